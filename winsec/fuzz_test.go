package winsec

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var fuzzSDDLSeeds = []string{
	"D:(A;;CC;;;" + testSID + ")",
	"D:(A;;CC;;;S-1-5-18)(D;;CC;;;WD)",
	"O:BAG:SYD:P(A;OICI;FA;;;SY)(A;OICI;0x1200a9;;;BU)",
	"O:" + testSID + "D:P(A;;FA;;;S-1-5-18)(A;;FA;;;" + testSID + ")",
	StateDirSDDL,
	"D:PAI(A;;0x1301bf;;;s-1-5-21-1-2-3-1001)S:(AU;SA;FA;;;WD)",
	"d:(a;;cc;;;sy)", "D:NO_ACCESS_CONTROL", "D:", "D:(", "D:()", "D:(A;;;;;)", "D:(A;;XX;;;SY)",
	"D:(A;;4294967295;;;SY)", "D:(A;;0x100000000;;;SY)", "G:DUD:(A;;CC;;;AU)", "D:(A;;CC;;;SY)trailing",
	"D:P (A; ;CC; ; ;S-1-5-18 )", "S:(D:)", ")D:(A;;CC;;;SY)",
}

// formatDACL writes d back as SDDL.
func formatDACL(d DACL) string {
	var b strings.Builder
	b.WriteString("D:")
	if d.Protected {
		b.WriteString("P")
	}
	for _, a := range d.ACEs {
		fmt.Fprintf(&b, "(%s;%s;0x%x;;;%s)", a.Type, a.Flags, a.Rights, a.SID)
	}
	return b.String()
}

// plainField reports whether an ACE field can be written back as is: the
// parser strips white space before it splits, so a field holding white
// space (possibly formed by that stripping) or replaced invalid UTF-8 does
// not survive.
func plainField(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || r == utf8.RuneError || r == ')'
	})
}

func FuzzParseDACL(f *testing.F) {
	for _, s := range fuzzSDDLSeeds {
		f.Add(s)
	}
	aliasValues := map[string]bool{}
	for _, v := range sidAliases {
		aliasValues[v] = true
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDACL(s)
		if err != nil {
			if d.Protected || d.ACEs != nil {
				t.Fatalf("ParseDACL(%q) = %+v with error %v", s, d, err)
			}
			if CheckUserMatch(s, testSID) == nil {
				t.Fatalf("CheckUserMatch(%q) accepted an SDDL ParseDACL refuses", s)
			}
			return
		}
		plain := true
		for _, a := range d.ACEs {
			if !aliasValues[a.SID] && ValidSID(a.SID) != nil || a.SID != strings.ToUpper(a.SID) || !strings.HasPrefix(a.SID, "S-1-") {
				t.Fatalf("ParseDACL(%q): ACE %+v has a bad SID", s, a)
			}
			if a.Type != strings.ToUpper(a.Type) || a.Flags != strings.ToUpper(a.Flags) {
				t.Fatalf("ParseDACL(%q): ACE %+v not upper case", s, a)
			}
			plain = plain && plainField(a.Type) && plainField(a.Flags)
		}
		if plain {
			back := formatDACL(d)
			d2, err := ParseDACL(back)
			if err != nil || d2.Protected != d.Protected || !slices.Equal(d2.ACEs, d.ACEs) {
				t.Fatalf("ParseDACL(%q) = %+v, written as %q, which parses as %+v, %v", s, d, back, d2, err)
			}
		}
		// CheckUserMatch accepts exactly one allow ACE with the match right.
		for _, sid := range []string{testSID, SIDSystem, strings.ToLower(testSID)} {
			want := len(d.ACEs) == 1 && d.ACEs[0].Type == "A" && strings.EqualFold(d.ACEs[0].SID, sid) && d.ACEs[0].Rights&RightMatchFilter != 0
			if got := CheckUserMatch(s, sid) == nil; got != want {
				t.Fatalf("CheckUserMatch(%q, %s) = %v, want %v (DACL %+v)", s, sid, got, want, d)
			}
		}
	})
}

var sidRE = regexp.MustCompile(`^S-1-([0-9]+)((?:-[0-9]+){1,15})$`)

// FuzzValidSID checks ValidSID against the SID grammar, and that the
// descriptors built from a valid SID parse back to it.
func FuzzValidSID(f *testing.F) {
	for _, s := range []string{testSID, "S-1-5-18", "s-1-5-32-544", "S-1-1-0", "S-1-5-21-1-2-3-4-5-6-7-8-9-10-11-12",
		"S-1-5-4294967296", "S-1-5-+1", "S-1-281474976710655-0", "S-1-0x5-1", "S-1-5-1-", "S-1-5-007", "SY"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidSID(s)
		// Every caller upper-cases the SID it was given, so the grammar
		// applies to the upper-cased form. (strings.EqualFold also lets
		// "\u017f", a long s, stand for the "S"; it upper-cases to "S".)
		u := strings.ToUpper(s)
		m := sidRE.FindStringSubmatch(u)
		want := m != nil
		if want {
			if _, perr := strconv.ParseUint(m[1], 10, 48); perr != nil {
				want = false
			}
			for _, sub := range strings.Split(m[2][1:], "-") {
				if _, perr := strconv.ParseUint(sub, 10, 32); perr != nil {
					want = false
				}
			}
		}
		if (err == nil) != want {
			t.Fatalf("ValidSID(%q) = %v, want valid %v", s, err, want)
		}
		if err != nil {
			for _, fn := range []func(string) (string, error){UserMatchSDDL, SecretsFileSDDL, DirGrantSDDLACE} {
				if out, err := fn(s); err == nil {
					t.Fatalf("descriptor %q built from invalid SID %q", out, s)
				}
			}
			return
		}
		um, err := UserMatchSDDL(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckUserMatch(um, s); err != nil {
			t.Fatalf("CheckUserMatch(UserMatchSDDL(%q) = %q): %v", s, um, err)
		}
		sf, err := SecretsFileSDDL(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseDACL(sf)
		want2 := []ACE{{"A", "", RightFileAll, SIDSystem}, {"A", "", RightFileAll, u}}
		if err != nil || !d.Protected || !slices.Equal(d.ACEs, want2) {
			t.Fatalf("ParseDACL(SecretsFileSDDL(%q) = %q) = %+v, %v", s, sf, d, err)
		}
		ace, err := DirGrantSDDLACE(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err = ParseDACL("D:" + ace)
		if err != nil || d.Protected || !slices.Equal(d.ACEs, []ACE{{"A", "OICI", RightFileModify, u}}) {
			t.Fatalf("ParseDACL(D:DirGrantSDDLACE(%q) = %q) = %+v, %v", s, ace, d, err)
		}
	})
}

// fuzzArgs splits s into arguments at NUL bytes (an argument cannot hold
// one).
func fuzzArgs(s string) []string { return strings.Split(s, "\x00") }

// FuzzCommandLine checks that SplitCommandLine reads back what
// ComposeCommandLine writes, for any arguments, and that splitting any
// command line, composing and splitting again gives the same arguments.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{
		"", "a", "a b", `a"b`, `a\"b`, `a\\"b`, `"a b"`, `"a""b"`, `a\`, `a\\`, "\t", ` "" `,
		`C:\Program Files\x\`, `\\server\share\`, `"unterminated`, "x\x00y z\x00\x00\"\\", "a\nb\vc",
		`"a\\\"b" c\\\\"d e"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := fuzzArgs(s)
		line := ComposeCommandLine(args)
		if got := SplitCommandLine(line); !slices.Equal(got, args) {
			t.Fatalf("SplitCommandLine(ComposeCommandLine(%q) = %q) = %q", args, line, got)
		}
		for _, a := range args {
			if got := SplitCommandLine(QuoteArg(a)); len(got) != 1 || got[0] != a {
				t.Fatalf("SplitCommandLine(QuoteArg(%q) = %q) = %q", a, QuoteArg(a), got)
			}
		}

		parsed := SplitCommandLine(s)
		if len(parsed) > len(s) {
			t.Fatalf("SplitCommandLine(%q) = %d arguments", s, len(parsed))
		}
		for _, a := range parsed {
			if len(a) > len(s) {
				t.Fatalf("SplitCommandLine(%q): argument %q longer than the line", s, a)
			}
		}
		if strings.TrimLeft(s, " \t") == "" && parsed != nil {
			t.Fatalf("SplitCommandLine(%q) = %q, want none", s, parsed)
		}
		again := ComposeCommandLine(parsed)
		if got := SplitCommandLine(again); !slices.Equal(got, parsed) {
			t.Fatalf("SplitCommandLine(%q) = %q, composed %q, split %q", s, parsed, again, got)
		}
	})
}

// FuzzLaunch checks that DecodeLaunch reads back what EncodeLaunch writes,
// and that any value DecodeLaunch accepts has a command and survives
// encoding and decoding again.
func FuzzLaunch(f *testing.F) {
	f.Add("cmd.exe\x00/c\x00echo hi", `C:\work`, testSID, "")
	f.Add("", "", "", "e30")
	f.Add("\x00x", "", "", "eyJhcmdzIjpbIiJdfQ")
	f.Add("a\xffb", "d\u2028", "S-1-5-32-545", "eyJhcmdzIjpbIngiXSwiZGlyIjoxfQ")
	f.Add("x", "", "", "eyJhcmdzIjpbIngiXSwiQVJHUyI6WyJ5Il19")
	f.Fuzz(func(t *testing.T, args, dir, sid, raw string) {
		l := Launch{Args: fuzzArgs(args), Dir: dir, SandboxGroupID: sid}
		v, err := EncodeLaunch(l)
		if (err == nil) != (l.Args[0] != "") {
			t.Fatalf("EncodeLaunch(%+v) = %q, %v", l, v, err)
		}
		if err == nil {
			if strings.ContainsFunc(v, func(r rune) bool {
				return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
			}) {
				t.Fatalf("EncodeLaunch(%+v) = %q: not base64url", l, v)
			}
			got, err := DecodeLaunch(v)
			want := l
			if !utf8.ValidString(args) || !utf8.ValidString(dir) || !utf8.ValidString(sid) {
				// JSON carries text: invalid UTF-8 comes back as U+FFFD.
				raw, _ := json.Marshal(l)
				want = Launch{}
				json.Unmarshal(raw, &want)
			}
			if err != nil || !slices.Equal(got.Args, want.Args) || got.Dir != want.Dir || got.SandboxGroupID != want.SandboxGroupID {
				t.Fatalf("DecodeLaunch(EncodeLaunch(%+v)) = %+v, %v", l, got, err)
			}
		}

		d, err := DecodeLaunch(raw)
		if err != nil {
			if d.Args != nil || d.Dir != "" || d.SandboxGroupID != "" {
				t.Fatalf("DecodeLaunch(%q) = %+v with error %v", raw, d, err)
			}
			return
		}
		if len(d.Args) == 0 || d.Args[0] == "" {
			t.Fatalf("DecodeLaunch(%q) = %+v: no command", raw, d)
		}
		v2, err := EncodeLaunch(d)
		if err != nil {
			t.Fatalf("EncodeLaunch(DecodeLaunch(%q) = %+v): %v", raw, d, err)
		}
		d2, err := DecodeLaunch(v2)
		if err != nil || !slices.Equal(d2.Args, d.Args) || d2.Dir != d.Dir || d2.SandboxGroupID != d.SandboxGroupID {
			t.Fatalf("DecodeLaunch(%q) = %+v, encoded %q, decoded %+v, %v", raw, d, v2, d2, err)
		}
	})
}

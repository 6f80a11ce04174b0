package winsec

import (
	"bytes"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
)

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		pw, err := NewPassword(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != PasswordLength {
			t.Fatalf("password length %d", len(pw))
		}
		for _, class := range []string{pwUpper, pwLower, pwDigit, pwSymbol} {
			if !strings.ContainsAny(pw, class) {
				t.Fatalf("password %q lacks a character of %q", pw, class)
			}
		}
		if strings.ContainsAny(pw, "\"' \\") {
			t.Fatalf("password %q has quoting characters", pw)
		}
		if seen[pw] {
			t.Fatal("password repeated")
		}
		seen[pw] = true
	}
	// A source of only rejected bytes fails instead of looping or biasing.
	if _, err := NewPassword(bytes.NewReader(bytes.Repeat([]byte{255}, 5000))); err == nil {
		t.Error("NewPassword accepted a source of only rejected bytes")
	}
	// A source whose draws lack a class is redrawn, not accepted.
	if _, err := NewPassword(bytes.NewReader(bytes.Repeat([]byte{0}, 64*PasswordLength))); err == nil {
		t.Error("NewPassword accepted a single-character password")
	}
}

func TestUniformIndex(t *testing.T) {
	n := len(pwAll)
	limit := 256 - 256%n
	// Every accepted byte maps to b%n; rejected bytes are skipped.
	got, err := uniformIndex(bytes.NewReader([]byte{byte(limit), byte(limit + 1), 7}), n)
	if err != nil || got != 7%n {
		t.Errorf("uniformIndex = %d, %v; want %d", got, err, 7%n)
	}
	counts := make([]int, n)
	for b := 0; b < limit; b++ {
		i, _ := uniformIndex(bytes.NewReader([]byte{byte(b)}), n)
		counts[i]++
	}
	for i, c := range counts {
		if c != limit/n {
			t.Fatalf("index %d drawn %d times of %d, want %d", i, c, limit, limit/n)
		}
	}
}

func TestCommandLineRoundTrip(t *testing.T) {
	cases := [][]string{
		{"sandgate.exe", "setup"},
		{`C:\Program Files\sandgate\sandgate.exe`, "--ports", "47100,47101"},
		{"a b", `c"d`, `e\`, `f\\`, `g\"h`, ``, `\\server\share\`, "tab\there", `"`, `\`, `\\"\\`},
		{`C:\dir with space\`, `trailing\\`},
	}
	for _, args := range cases {
		line := ComposeCommandLine(args)
		if got := SplitCommandLine(line); !slices.Equal(got, args) {
			t.Errorf("round trip of %q: line %s, got %q", args, line, got)
		}
	}
	want := map[string]string{
		"plain":        "plain",
		"a b":          `"a b"`,
		`c"d`:          `"c\"d"`,
		`dir\ x\`:      `"dir\ x\\"`,
		``:             `""`,
		`C:\no\spaces`: `C:\no\spaces`,
	}
	for in, w := range want {
		if got := QuoteArg(in); got != w {
			t.Errorf("QuoteArg(%q) = %s, want %s", in, got, w)
		}
	}
}

func TestSplitCommandLine(t *testing.T) {
	// Examples from Microsoft's documentation of argument parsing.
	tests := map[string][]string{
		`"a b c" d e`:       {"a b c", "d", "e"},
		`"ab\"c" "\\" d`:    {`ab"c`, `\`, "d"},
		`a\\\b d"e f"g h`:   {`a\\\b`, "de fg", "h"},
		`a\\\"b c d`:        {`a\"b`, "c", "d"},
		`a\\\\"b c" d e`:    {`a\\b c`, "d", "e"},
		`a"b"" c d`:         {`ab" c d`},
		"  lead \t trail  ": {"lead", "trail"},
	}
	for in, want := range tests {
		if got := SplitCommandLine(in); !slices.Equal(got, want) {
			t.Errorf("SplitCommandLine(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestDenyOnlyGroups(t *testing.T) {
	group := "S-1-5-21-9-9-9-1005"
	groups := []TokenGroup{
		{"S-1-1-0", 7},
		{SIDUsers, 7},
		{SIDAdministrators, 7},
		{"S-1-5-32-555", 7},              // Remote Desktop Users
		{"S-1-5-5-0-123456", 0xC0000007}, // logon SID
		{"S-1-16-8192", GroupIntegrity},  // medium integrity
		{strings.ToLower(group), 7},      // the sandbox group
		{"S-1-5-21-9-9-9-1006", 7},       // some other local group
		{"S-1-5-114", GroupDenyOnly},     // already deny-only
		{"S-1-5-4", 7},
	}
	got := DenyOnlyGroups(groups, group)
	want := []string{SIDAdministrators, "S-1-5-32-555", "S-1-5-21-9-9-9-1006"}
	if !slices.Equal(got, want) {
		t.Errorf("DenyOnlyGroups = %v, want %v", got, want)
	}
	// Without a sandbox group SID, the group is not kept.
	if got := DenyOnlyGroups(groups[6:7], ""); len(got) != 1 {
		t.Errorf("sandbox group kept without being named: %v", got)
	}
}

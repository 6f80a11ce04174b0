package fsview

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// subsection says whether a git variable has a subsection
// (section.SUB.name).
type subsection int

const (
	noSub  subsection = iota // section.name only
	needs                    // section.SUB.name only
	anySub                   // either
)

// programVar is a git configuration variable that makes git run a
// program (or read more configuration), as git spells it. A name of "*"
// is any name of the section.
type programVar struct {
	section, name string
	sub           subsection
	why           string
}

// programVars are the variables a new configuration is searched for
// (git-config(1)): set by the command in a repository it made, they run
// its program on the user's next git command there.
var programVars = []programVar{
	{"core", "hooksPath", noSub, "git runs the hooks there"},
	{"core", "fsmonitor", noSub, "git runs it on most commands"},
	{"core", "sshCommand", noSub, "git runs it to fetch and push"},
	{"core", "gitProxy", noSub, "git runs it to fetch over git://"},
	{"core", "pager", noSub, "git runs it to page output"},
	{"core", "editor", noSub, "git runs it to edit messages"},
	{"core", "askPass", noSub, "git runs it to ask for a password"},
	{"sequence", "editor", noSub, "git runs it in an interactive rebase"},
	{"alias", "*", noSub, "git runs the shell command for the alias"},
	{"pager", "*", noSub, "git runs it to page the command's output"},
	{"filter", "clean", needs, "git runs it on add, status and diff"},
	{"filter", "smudge", needs, "git runs it on checkout"},
	{"filter", "process", needs, "git runs it on add and checkout"},
	{"diff", "textconv", needs, "git runs it on diff and log"},
	{"diff", "command", needs, "git runs it on diff"},
	{"diff", "external", noSub, "git runs it on diff"},
	{"merge", "driver", needs, "git runs it on merge"},
	{"credential", "helper", anySub, "git runs it for credentials"},
	{"gpg", "program", anySub, "git runs it to sign and verify"},
	{"remote", "uploadpack", needs, "git runs it to fetch"},
	{"remote", "receivepack", needs, "git runs it to push"},
	{"uploadpack", "packObjectsHook", noSub, "git runs it to serve fetches"},
	{"interactive", "diffFilter", noSub, "git runs it on add -p"},
	{"web", "browser", noSub, "git runs it for help and instaweb"},
	{"include", "path", noSub, "git reads more configuration from it"},
	{"includeIf", "path", needs, "git reads more configuration from it"},
}

// programKey returns e's variable name as git spells it and what runs it,
// when e makes git run a program; "" otherwise.
func programKey(e gitEntry) (key, why string) {
	for _, v := range programVars {
		if !strings.EqualFold(v.section, e.Section) || (v.name != "*" && !strings.EqualFold(v.name, e.Name)) {
			continue
		}
		if (v.sub == noSub && e.Subsection != "") || (v.sub == needs && e.Subsection == "") {
			continue
		}
		if !runsProgram(v, e.Value) {
			return "", ""
		}
		name := v.name
		if name == "*" {
			name = e.Name
		}
		if e.Subsection != "" {
			return v.section + "." + e.Subsection + "." + name, v.why
		}
		return v.section + "." + name, v.why
	}
	return "", ""
}

// runsProgram reports whether value of the variable v names a program:
// an alias only with "!", core.fsmonitor and pager.* not as booleans, an
// empty value never.
func runsProgram(v programVar, value string) bool {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "":
		return false
	case "true", "false", "yes", "no", "on", "off", "1", "0":
		return v.section != "pager" && v.name != "fsmonitor"
	}
	if v.section == "alias" {
		return strings.HasPrefix(strings.TrimSpace(value), "!")
	}
	return true
}

// maxShown bounds how much of a value a warning shows.
const maxShown = 120

// shellQuote quotes s for a POSIX shell when it needs it: as it is when
// it is plain, in single quotes when it is printable, else in $'...' with
// every other byte escaped (no control character reaches the terminal).
// Values longer than maxShown are cut, and end with "...".
func shellQuote(s string) string {
	if len(s) > maxShown {
		cut := maxShown
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r)))
	}) < 0 {
		return s
	}
	printable := utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
	if printable {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	b.WriteString("'")
	return b.String()
}

// printable replaces what is not printable in s (a terminal's control
// sequences) with \xHH.
func printable(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			for i := 0; i < n; i++ {
				fmt.Fprintf(&b, `\x%02x`, s[i])
			}
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

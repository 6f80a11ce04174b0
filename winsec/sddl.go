// Package winsec holds the Windows security pieces of sandgate's identity
// backend. The pure parts, built and tested on every platform, are the SID
// and SDDL strings (the firewall rules' user condition, the ACLs of the
// secrets file and the setup directory, the working-directory grant), the
// restricted-token group policy, password generation, Windows command-line
// quoting and the environment of an identity run. The Windows-only parts
// (files ending in _windows.go) manage the sandbox users and group through
// netapi32, protect their passwords with DPAPI, relaunch setup elevated,
// start commands as a sandbox user and grant directory access.
package winsec

import (
	"fmt"
	"strconv"
	"strings"
)

// Well-known SIDs used in the descriptors below.
const (
	SIDSystem         = "S-1-5-18"     // LocalSystem
	SIDAdministrators = "S-1-5-32-544" // BUILTIN\Administrators
	SIDUsers          = "S-1-5-32-545" // BUILTIN\Users
)

// Access masks used in the descriptors below.
const (
	// RightMatchFilter is the one right Windows Firewall checks in a rule's
	// LocalUserAuthorizedList: FWP_ACTRL_MATCH_FILTER, written "CC" in SDDL.
	RightMatchFilter uint32 = 0x1
	// RightFileAll is FILE_ALL_ACCESS ("FA").
	RightFileAll uint32 = 0x1F01FF
	// RightFileRead is FILE_GENERIC_READ|FILE_EXECUTE ("read and execute").
	RightFileRead uint32 = 0x1200A9
	// RightFileModify is read, write, execute and delete, without the right
	// to change permissions or take ownership (icacls "M").
	RightFileModify uint32 = 0x1301BF
)

// ValidSID reports whether s is a SID in string form, S-1-A-S1-S2-..., with
// a revision of 1, a 48-bit identifier authority and 1 to 15 32-bit
// sub-authorities (the form ConvertStringSidToSid accepts, without the
// two-letter aliases such as "SY").
func ValidSID(s string) error {
	parts := strings.Split(s, "-")
	if len(parts) < 4 || !strings.EqualFold(parts[0], "S") || parts[1] != "1" {
		return fmt.Errorf("%q is not a SID (want S-1-AUTHORITY-SUBAUTHORITY...)", s)
	}
	if _, err := strconv.ParseUint(parts[2], 10, 48); err != nil || !allDigits(parts[2]) {
		return fmt.Errorf("%q is not a SID: bad identifier authority %q", s, parts[2])
	}
	subs := parts[3:]
	if len(subs) > 15 {
		return fmt.Errorf("%q is not a SID: %d sub-authorities, at most 15", s, len(subs))
	}
	for _, p := range subs {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil || !allDigits(p) {
			return fmt.Errorf("%q is not a SID: bad sub-authority %q", s, p)
		}
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// UserMatchSDDL returns the security descriptor that Windows Firewall takes
// as a rule's LocalUserAuthorizedList: the rule applies to traffic of
// processes whose token user is sid, and of no one else. For example
// "D:(A;;CC;;;S-1-5-21-1-2-3-1001)".
func UserMatchSDDL(sid string) (string, error) {
	if err := ValidSID(sid); err != nil {
		return "", err
	}
	return "D:(A;;CC;;;" + strings.ToUpper(sid) + ")", nil
}

// SecretsFileSDDL returns the descriptor of the file holding the sandbox
// users' DPAPI-protected passwords: owned by the installing user, with a
// protected DACL (nothing inherited) that lets only that user and SYSTEM
// in.
func SecretsFileSDDL(ownerSID string) (string, error) {
	if err := ValidSID(ownerSID); err != nil {
		return "", err
	}
	o := strings.ToUpper(ownerSID)
	return "O:" + o + "D:P(A;;FA;;;" + SIDSystem + ")(A;;FA;;;" + o + ")", nil
}

// StateDirSDDL is the descriptor of sandgate's directory under ProgramData
// (marker and secrets file): a protected DACL, so ProgramData's default
// "users may create files" entries do not apply, giving SYSTEM and
// Administrators full control and Users read access, inherited by files.
const StateDirSDDL = "D:P(A;OICI;FA;;;" + SIDSystem + ")(A;OICI;FA;;;" + SIDAdministrators + ")(A;OICI;0x1200a9;;;" + SIDUsers + ")"

// DirGrantSDDLACE returns the ACE, in SDDL, that a run adds to its working
// directory so the sandbox group can work there: modify rights, inherited
// by files and subdirectories. It describes exactly what the Windows layer
// applies with SetEntriesInAcl.
func DirGrantSDDLACE(groupSID string) (string, error) {
	if err := ValidSID(groupSID); err != nil {
		return "", err
	}
	return fmt.Sprintf("(A;OICI;0x%x;;;%s)", RightFileModify, strings.ToUpper(groupSID)), nil
}

// ACE is one access control entry of an SDDL DACL.
type ACE struct {
	Type   string // "A" allow, "D" deny, or another SDDL ACE type
	Flags  string // inheritance flags as written, e.g. "OICI"
	Rights uint32 // access mask
	SID    string // trustee, upper case S-1-... (aliases expanded where known)
}

// DACL is the discretionary ACL of an SDDL security descriptor.
type DACL struct {
	Protected bool // "P": entries are not inherited from the parent
	ACEs      []ACE
}

// rightCodes are the SDDL access-right abbreviations ParseDACL understands.
var rightCodes = map[string]uint32{
	"GA": 0x10000000, "GR": 0x80000000, "GW": 0x40000000, "GX": 0x20000000,
	"RC": 0x20000, "SD": 0x10000, "WD": 0x40000, "WO": 0x80000,
	"RP": 0x10, "WP": 0x20, "CC": 0x1, "DC": 0x2, "LC": 0x4, "SW": 0x8,
	"LO": 0x80, "DT": 0x40, "CR": 0x100,
	"FA": RightFileAll, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0,
	"KA": 0xF003F, "KR": 0x20019, "KW": 0x20006, "KX": 0x20019,
}

// sidAliases are the SDDL SID abbreviations ParseDACL expands.
var sidAliases = map[string]string{
	"SY": SIDSystem, "BA": SIDAdministrators, "BU": SIDUsers, "WD": "S-1-1-0",
	"AU": "S-1-5-11", "IU": "S-1-5-4", "NS": "S-1-5-20", "LS": "S-1-5-19",
	"CO": "S-1-3-0", "AN": "S-1-5-7",
}

// ParseDACL parses the DACL part ("D:...") of an SDDL string. Owner, group
// and SACL parts are skipped. An SDDL without a DACL part yields an error:
// for sandgate's purposes "no DACL" never means what is wanted.
func ParseDACL(sddl string) (DACL, error) {
	s := strings.Join(strings.Fields(sddl), "")
	i := indexPart(s, 'D')
	if i < 0 {
		return DACL{}, fmt.Errorf("SDDL %q has no DACL", sddl)
	}
	s = s[i+2:]
	var d DACL
	// Flags before the first ACE: P, AI, AR, NO_ACCESS_CONTROL.
	for len(s) > 0 && s[0] != '(' {
		switch {
		case strings.HasPrefix(s, "P"):
			d.Protected = true
			s = s[1:]
		case strings.HasPrefix(s, "AI"), strings.HasPrefix(s, "AR"):
			s = s[2:]
		default:
			// Another part (S:, O:, G:) or NO_ACCESS_CONTROL: stop here.
			if len(s) > 1 && s[1] == ':' {
				return d, nil
			}
			return DACL{}, fmt.Errorf("SDDL %q: unexpected DACL flags at %q", sddl, s)
		}
	}
	for len(s) > 0 && s[0] == '(' {
		end := strings.IndexByte(s, ')')
		if end < 0 {
			return DACL{}, fmt.Errorf("SDDL %q: unterminated ACE", sddl)
		}
		ace, err := parseACE(s[1:end])
		if err != nil {
			return DACL{}, fmt.Errorf("SDDL %q: %w", sddl, err)
		}
		d.ACEs = append(d.ACEs, ace)
		s = s[end+1:]
	}
	if len(s) > 0 && !(len(s) > 1 && s[1] == ':') {
		return DACL{}, fmt.Errorf("SDDL %q: trailing text %q", sddl, s)
	}
	return d, nil
}

// indexPart returns the index of "X:" for the part letter X at top level
// (outside parentheses), or -1.
func indexPart(s string, part byte) int {
	depth := 0
	for i := 0; i+1 < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		default:
			if depth == 0 && (s[i] == part || s[i] == part+('a'-'A')) && s[i+1] == ':' {
				return i
			}
		}
	}
	return -1
}

func parseACE(s string) (ACE, error) {
	f := strings.Split(s, ";")
	if len(f) < 6 {
		return ACE{}, fmt.Errorf("ACE %q has %d fields, want 6", s, len(f))
	}
	rights, err := parseRights(f[2])
	if err != nil {
		return ACE{}, fmt.Errorf("ACE %q: %w", s, err)
	}
	sid := strings.ToUpper(f[5])
	if full, ok := sidAliases[sid]; ok {
		sid = full
	} else if err := ValidSID(sid); err != nil {
		return ACE{}, fmt.Errorf("ACE %q: %w", s, err)
	}
	return ACE{Type: strings.ToUpper(f[0]), Flags: strings.ToUpper(f[1]), Rights: rights, SID: sid}, nil
}

func parseRights(s string) (uint32, error) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		v, err := strconv.ParseUint(s[2:], 16, 32)
		if err != nil {
			return 0, fmt.Errorf("bad access mask %q", s)
		}
		return uint32(v), nil
	}
	if allDigits(s) {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad access mask %q", s)
		}
		return uint32(v), nil
	}
	if len(s)%2 != 0 {
		return 0, fmt.Errorf("bad access rights %q", s)
	}
	var m uint32
	for i := 0; i < len(s); i += 2 {
		v, ok := rightCodes[strings.ToUpper(s[i:i+2])]
		if !ok {
			return 0, fmt.Errorf("unknown access right %q", s[i:i+2])
		}
		m |= v
	}
	return m, nil
}

// CheckUserMatch verifies that sddl, as read back from a firewall rule's
// LocalUserAuthorizedList, selects exactly the user sid: one allow entry
// for sid carrying the match right, and nothing else (no other user, no
// deny entry that could carve a process out of the rule).
func CheckUserMatch(sddl, sid string) error {
	d, err := ParseDACL(sddl)
	if err != nil {
		return err
	}
	if len(d.ACEs) != 1 {
		return fmt.Errorf("user condition %q has %d entries, want exactly one for %s", sddl, len(d.ACEs), sid)
	}
	a := d.ACEs[0]
	if a.Type != "A" || !strings.EqualFold(a.SID, sid) || a.Rights&RightMatchFilter == 0 {
		return fmt.Errorf("user condition %q does not select exactly %s", sddl, sid)
	}
	return nil
}

package winsec

import "strings"

// TokenGroup is one group of an access token, as GetTokenInformation
// reports it.
type TokenGroup struct {
	SID        string
	Attributes uint32 // SE_GROUP_* flags
}

// Token group attribute flags (winnt.h) that DenyOnlyGroups looks at.
const (
	GroupIntegrity = 0x00000020 // SE_GROUP_INTEGRITY: the integrity label
	GroupLogonID   = 0xC0000000 // SE_GROUP_LOGON_ID: the logon session's SID
	GroupDenyOnly  = 0x00000010 // SE_GROUP_USE_FOR_DENY_ONLY
)

// keptGroups are the groups a sandboxed command keeps enabled: what every
// ordinary interactive process has and needs to find its profile, the
// console and the working directory. Every other group becomes deny-only.
var keptGroups = map[string]bool{
	"S-1-1-0":   true, // Everyone
	"S-1-2-0":   true, // LOCAL
	"S-1-2-1":   true, // CONSOLE LOGON
	"S-1-5-4":   true, // INTERACTIVE
	"S-1-5-11":  true, // Authenticated Users
	"S-1-5-15":  true, // This Organization
	"S-1-5-113": true, // Local account
	SIDUsers:    true, // BUILTIN\Users
}

// DenyOnlyGroups returns the SIDs of the token's groups that the sandboxed
// command's restricted token turns into deny-only groups (the SidsToDisable
// of CreateRestrictedToken): every group except the ordinary ones listed
// above, the logon SID, the integrity label and the sandbox group
// (sandboxGroupSID, whose grant opens the working directory). A deny-only
// group still matches deny entries but never grants access, so membership
// in Administrators, Remote Desktop Users or any group added to the sandbox
// user later gives the command nothing.
//
// The token user itself is never touched: Windows Firewall selects the
// offline user's traffic by the token user, and the restricted token has no
// restricting SIDs, so the user condition of the rules matches exactly as
// it does for an unrestricted process of that user.
func DenyOnlyGroups(groups []TokenGroup, sandboxGroupSID string) []string {
	var out []string
	for _, g := range groups {
		sid := strings.ToUpper(g.SID)
		switch {
		case g.Attributes&GroupIntegrity != 0:
		case g.Attributes&GroupLogonID == GroupLogonID:
		case g.Attributes&GroupDenyOnly != 0:
		case keptGroups[sid]:
		case sandboxGroupSID != "" && strings.EqualFold(sid, sandboxGroupSID):
		default:
			out = append(out, sid)
		}
	}
	return out
}

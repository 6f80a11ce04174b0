package winsec

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ValidAccountName checks a local user or group name against Windows'
// rules: 1 to 20 characters, not only dots and spaces, none of
// " / \ [ ] : | < > + = ; , ? * @ and no control characters.
func ValidAccountName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > 20 {
		return fmt.Errorf("%q is not a valid Windows account name (1 to 20 characters)", name)
	}
	if strings.Trim(name, ". ") == "" {
		return fmt.Errorf("%q is not a valid Windows account name (only dots and spaces)", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`"/\[]:|<>+=;,?*@`, r) {
			return fmt.Errorf("%q is not a valid Windows account name (character %q)", name, r)
		}
	}
	return nil
}

// ElevationNotice is the one line sandgate prints before it shows the
// administrator (UAC) prompt: what needs the rights and why now, e.g.
// "sandgate: updating the sandbox setup needs administrator rights
// (proxy ports changed from [3128] to [3128 8080]); Windows will ask for
// permission now". Reasons are joined with "; " and kept on one line.
func ElevationNotice(what string, reasons []string) string {
	line := "sandgate: " + what + " needs administrator rights"
	if len(reasons) > 0 {
		line += " (" + strings.Join(reasons, "; ") + ")"
	}
	line += "; Windows will ask for permission now"
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(line)
}

// profileVars are the per-user variables an identity run takes from the
// sandbox user's own profile rather than from the caller's environment:
// they name the caller's directories, where the sandbox user can neither
// read nor write.
var profileVars = []string{
	"USERPROFILE", "APPDATA", "LOCALAPPDATA", "TEMP", "TMP",
	"HOMEDRIVE", "HOMEPATH", "HOMESHARE", "USERNAME", "USERDOMAIN",
	"USERDOMAIN_ROAMINGPROFILE", "LOGONSERVER", "ONEDRIVE",
}

// UserProfileVars returns env with the per-user variables replaced by
// those of profile (the sandbox user's environment block): each of them
// is taken from profile when profile has it and removed otherwise; HOME,
// when env has it, becomes profile's USERPROFILE. Everything else of env
// is kept. The result is in Windows form.
func UserProfileVars(env, profile []string) []string {
	pm := map[string]string{}
	for _, kv := range profile {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			pm[strings.ToUpper(k)] = v
		}
	}
	drop := map[string]bool{}
	for _, n := range profileVars {
		drop[n] = true
	}
	var out []string
	hasHome := false
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		u := strings.ToUpper(k)
		if u == "HOME" {
			hasHome = true
			continue
		}
		if !drop[u] {
			out = append(out, kv)
		}
	}
	for _, n := range profileVars {
		if v, ok := pm[n]; ok {
			out = append(out, n+"="+v)
		}
	}
	if p, ok := pm["USERPROFILE"]; ok && hasHome {
		out = append(out, "HOME="+p)
	}
	return WindowsEnv(out)
}

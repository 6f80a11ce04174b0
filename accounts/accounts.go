// Package accounts reads and changes the sandbox users and their group in
// the system's account database, with the same verbs on every platform
// where the concepts match (LookupUser, LookupGroup, RemoveUser,
// RemoveGroup):
//
//   - Linux: the passwd, shadow, group and gshadow files under an etc
//     directory, edited in memory (DB) under the lock every account tool
//     honours and written back whole by an atomic rename, so that setup
//     needs no useradd or groupadd. Users and groups are added with free
//     system ids (AddUser, AddGroup); existing ones are adopted only when
//     they look like sandgate's (NotAdoptable, GroupNotAdoptable).
//   - Windows: local accounts through netapi32, each change one call:
//     EnsureUser and EnsureGroup create or adopt, AddToGroup adds a member,
//     HideFromLogon keeps the users off the logon screen.
//
// SessionEnv, pure and shared, gives a command the environment of the
// sandbox user it runs as.
package accounts

import "strings"

// SessionEnv returns env with HOME, USER and LOGNAME naming the sandbox
// user name and its home (a command running as that user cannot use the
// caller's home); an empty home or name leaves the variable unset. Every
// other entry is kept in order. env is not modified.
func SessionEnv(env []string, name, home string) []string {
	set := map[string]string{"HOME": home, "USER": name, "LOGNAME": name}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok {
			continue
		}
		out = append(out, kv)
	}
	for _, k := range []string{"HOME", "USER", "LOGNAME"} {
		if set[k] != "" {
			out = append(out, k+"="+set[k])
		}
	}
	return out
}

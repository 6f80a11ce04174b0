//go:build linux

package sandbox

import (
	"os"
	"strings"
)

// readSysctl returns the trimmed content of /proc/sys/NAME, "" if unreadable.
func readSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// usernsDiagnosis names the machine settings that refuse unprivileged user
// namespaces, if it can find them.
func usernsDiagnosis() string {
	var why []string
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		why = append(why, "this kernel has no user namespaces (CONFIG_USER_NS)")
	}
	if readSysctl("kernel/unprivileged_userns_clone") == "0" {
		why = append(why, "sysctl kernel.unprivileged_userns_clone is 0")
	}
	if readSysctl("user/max_user_namespaces") == "0" {
		why = append(why, "sysctl user.max_user_namespaces is 0")
	}
	if readSysctl("kernel/apparmor_restrict_unprivileged_userns") == "1" {
		why = append(why, "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns is 1)")
	}
	inContainer, _ := containerHints()
	why = append(why, inContainer...)
	if len(why) == 0 {
		return "unprivileged user namespaces appear to be refused by this machine (a security module, seccomp policy or container runtime)"
	}
	return strings.Join(why, "; ")
}

// UsernsDiagnosis is usernsDiagnosis for `sandgate doctor`: the machine
// settings that refuse unprivileged user namespaces, in plain words.
func UsernsDiagnosis() string { return usernsDiagnosis() }

// usernsOptions says what a user can do about it.
const usernsOptions = "options: allow unprivileged user namespaces " +
	"(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces=15000, " +
	"or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile that lets sandgate use userns), " +
	"or use the identity backend (as root: `sudo sandgate setup` once, then `sandgate run --backend identity`)"

// unavailable says that the netns backend cannot set up its namespaces
// (what failed, why), with the diagnosis and the options.
func unavailable(what string, err error) *UnavailableError {
	fix := usernsOptions
	if _, c := containerHints(); c != "" {
		fix += "; " + c
	}
	return &UnavailableError{Reason: what + ": " + err.Error() + "; " + usernsDiagnosis(), Fix: fix, Err: err}
}

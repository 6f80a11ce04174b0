//go:build linux

package sandbox

import (
	"os"
	"strings"
)

// containerHints names what about this process looks like a container's
// confinement (a seccomp filter on sandgate itself, a runtime's marker
// file or variable), in plain words, and what to change in the container
// when it finds any ("" otherwise). The files are overridable for tests.
func containerHints() (why []string, fix string) {
	if seccompFiltered(readFile(procSelfStatus)) {
		why = append(why, "a seccomp filter confines sandgate itself (Seccomp: 2 in "+procSelfStatus+"), as a container runtime's default profile does: "+
			"Docker's, and Kubernetes' RuntimeDefault, refuse clone and unshare with CLONE_NEWUSER to a process without CAP_SYS_ADMIN")
	}
	if masked := maskedProc(readFile(procSelfMountinfo)); len(masked) > 0 {
		why = append(why, "parts of /proc are hidden under other mounts ("+strings.Join(masked, ", ")+
			"), as container runtimes do, and the kernel refuses a fresh /proc in a user namespace while they are")
	}
	for _, m := range containerMarkers {
		if m.env != "" && os.Getenv(m.env) != "" || m.path != "" && exists(m.path) {
			why = append(why, m.says)
		}
	}
	if len(why) == 0 {
		return nil, ""
	}
	return why, "in a container: let sandgate create user namespaces and mount /proc in them " +
		"(`docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined`, " +
		"or a seccomp profile of your own that allows CLONE_NEWUSER; Kubernetes: seccompProfile and appArmorProfile Unconfined, procMount Unmasked), " +
		"or run it --privileged; see docs/containers.md"
}

// procSelfStatus and procSelfMountinfo are where containerHints reads
// the seccomp mode and the mounts.
var (
	procSelfStatus    = "/proc/self/status"
	procSelfMountinfo = "/proc/self/mountinfo"
)

// maskedProc returns the mount points below /proc in a mountinfo text
// (at most 5, then "…"), but binfmt_misc's, which hides nothing: what a
// runtime's masked paths (Docker's /proc/keys, /proc/acpi, …) look like.
func maskedProc(mountinfo string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[4], "/proc/") || f[4] == "/proc/sys/fs/binfmt_misc" {
			continue
		}
		if len(out) == 5 {
			return append(out, "…")
		}
		out = append(out, f[4])
	}
	return out
}

// containerMarkers are the signs a container runtime leaves.
var containerMarkers = []struct{ path, env, says string }{
	{path: "/.dockerenv", says: "this is a Docker container (/.dockerenv exists)"},
	{path: "/run/.containerenv", says: "this is a Podman container (/run/.containerenv exists)"},
	{env: "KUBERNETES_SERVICE_HOST", says: "this is a Kubernetes pod (KUBERNETES_SERVICE_HOST is set)"},
}

// seccompFiltered reports whether a /proc/PID/status text says the
// process runs under a seccomp filter (mode 2).
func seccompFiltered(status string) bool {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			return strings.TrimSpace(v) == "2"
		}
	}
	return false
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

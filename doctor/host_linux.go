//go:build linux

package doctor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/sandbox"
	"github.com/sandgate/sandgate/setup"
)

// NoopRole is the argv[1] under which the sandgate binary exits 0 at once:
// the doctor starts it in new namespaces to see whether the kernel allows
// them.
const NoopRole = "__doctor-noop"

// hostChecks reads what the kernel offers the default run.
func hostChecks() []Check {
	return []Check{usernsCheck(), landlockCheck(), seccompCheck(), identityCheck()}
}

func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// usernsCheck tries what the netns backend does first: a child in new
// user and network namespaces.
func usernsCheck() Check {
	c := Check{Name: "user namespaces", Required: true}
	self, err := os.Executable()
	if err != nil {
		c.Detail = "cannot find this program to test with: " + err.Error()
		return c
	}
	cmd := exec.Command(self, NoopRole)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	if err := cmd.Run(); err != nil {
		c.Detail = "cannot create user and network namespaces: " + err.Error() + "; " + sandbox.UsernsDiagnosis()
		c.Fix = "allow unprivileged user namespaces (see docs/containers.md), or set up the identity backend: `sudo sandgate setup`, then `sandgate run --backend identity`"
		return c
	}
	c.OK, c.Detail = true, "new user, network, mount and pid namespaces can be created"
	return c
}

// landlockCheck asks the kernel for its Landlock ABI version.
func landlockCheck() Check {
	c := Check{Name: "Landlock", Required: true}
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		c.Detail = "not available: " + errno.Error()
		if errors.Is(errno, unix.EOPNOTSUPP) {
			c.Detail = "built into the kernel but turned off (add landlock to the lsm= boot parameter)"
		}
		c.Fix = "use a kernel with Landlock (5.13 or later, CONFIG_SECURITY_LANDLOCK, landlock in lsm=); without it the default file system view cannot be enforced (`--fs host` runs without one)"
		return c
	}
	c.OK, c.Detail = true, fmt.Sprintf("ABI %d", v)
	return c
}

// seccompCheck reads which seccomp filter actions the kernel has; the
// sandbox needs filters, and user notification for --allow-unix-socket.
func seccompCheck() Check {
	c := Check{Name: "seccomp", Required: true}
	acts := sysctl("kernel/seccomp/actions_avail")
	if acts == "" {
		c.Detail = "seccomp filters are not available (no /proc/sys/kernel/seccomp/actions_avail)"
		c.Fix = "use a kernel built with CONFIG_SECCOMP_FILTER"
		return c
	}
	c.OK, c.Detail = true, "filter actions: "+acts
	if !strings.Contains(acts, "user_notif") {
		c.Detail += " (no user_notif: --allow-unix-socket cannot be used)"
	}
	return c
}

// identityCheck reports the identity backend's setup; a default run does
// not need it when namespaces work, so it is informational.
func identityCheck() Check {
	c := Check{Name: "identity backend setup"}
	m, drift, err := setup.Status(setup.Options{})
	switch {
	case errors.Is(err, setup.ErrNotInstalled):
		c.Detail = "not installed (only needed where namespaces cannot be created: `sudo sandgate setup`)"
	case err != nil:
		c.Detail = "cannot read it: " + err.Error()
	case len(drift) > 0:
		c.Detail = fmt.Sprintf("installed (version %d) but differs: %s", m.SetupVersion, strings.Join(drift, "; "))
		c.Fix = "`sudo sandgate setup` reconciles it"
	default:
		c.OK, c.Detail = true, fmt.Sprintf("installed and current (version %d)", m.SetupVersion)
	}
	return c
}

// NoopMain exits 0 at once when args[1] is NoopRole.
func NoopMain(args []string) (code int, ok bool) {
	if len(args) >= 2 && args[1] == NoopRole {
		return 0, true
	}
	return 0, false
}

//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/accounts"
	"github.com/sandgate/sandgate/dirgrant"
	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/proxyenv"
	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/sandbox/internal/confine"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
	"github.com/sandgate/sandgate/setup"
)

// The identity backend runs CMD as one of the two sandbox users that
// `sandgate setup` installs: the offline user (NetworkProxy, NetworkNone),
// whose sockets the firewall rules confine to the reserved loopback proxy
// ports, or the online user (NetworkFull), which has no rules. CMD stays in
// the host's network namespace; the proxy runs in sandgate, as the caller,
// on two free ports of the reserved set, and asks for per-run credentials
// (every local user can reach the host's loopback).
//
// The init is started in new PID, mount, IPC and UTS namespaces (no user
// namespace: the caller is root) and starts CMD from a thread that became
// the sandbox user: no supplementary groups, no_new_privs, no capabilities
// in any set, locked secure bits, Landlock scopes closing the host's
// abstract unix sockets and signals to processes outside the sandbox, and
// the netns backend's seccomp filter.
//
// With UnixSockets the init (root, the caller) opens the allowed sockets
// before the view and answers CMD's connect(2) calls from its other
// threads, as on the netns backend (unixgate): the thread that takes CMD's
// socket (pidfd_getfd) and reads its memory keeps the init's capabilities,
// which the kernel's ptrace check asks for on a process of another uid,
// and the connect itself is made from a thread of uid 0 without any
// capability, so a server sees the caller (root) as its peer and the
// socket's own permission bits decide, with no CAP_DAC_OVERRIDE.

// needRoot is what the identity backend tells a caller without root, after
// the state of the setup, and needRootFix what to do about it.
const (
	needRoot    = "identity runs need root (in the host's user namespace) until sandgate has a privileged launcher for the sandbox users"
	needRootFix = "run sandgate as root, or use --backend netns"
)

// runIdentity runs spec with the identity backend. Failures before the
// sandbox init started are notStartedErrors.
func runIdentity(ctx context.Context, spec Spec) (Result, error) {
	pre := func(err error) (Result, error) { return Result{}, &notStartedError{err} }
	leaser := spec.setupLeaser()
	if !hostRoot() {
		return pre(nonRootError(leaser, spec.setupNeed()))
	}
	if err := landlockScopingAvailable(); err != nil {
		return pre(err)
	}
	logf := spec.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	notify := spec.notifier()
	lease, err := leaser.Acquire(spec.setupNeed(), notify)
	if err != nil {
		return pre(setupError(err))
	}
	defer lease.Release()
	repairGrants(leaser, notify)

	id, home, err := sandboxIdentity(lease, spec.Network == NetworkFull)
	if err != nil {
		return pre(err)
	}
	var guard *rulesGuard // the online user has no rules to watch
	if spec.Network != NetworkFull {
		if guard, err = watchRules(ctx, leaser.Options.NetNS, lease.Marker(), uint32(id.UID)); err != nil {
			return pre(err)
		}
		defer guard.close()
	}
	dir, err := workingDir(spec.Dir)
	if err != nil {
		return pre(err)
	}
	grant, err := leaser.Options.GrantRecords().Grant(dir, dirgrant.Grantee{UID: uint32(id.UID), GID: uint32(id.GID)})
	if err != nil {
		return pre(err)
	}
	defer func() {
		if err := grant.Release(spec.KeepDirGrant, logf); err != nil {
			notify(fmt.Sprintf("%v (the sandbox group may still have access to %s)", err, dir))
		}
	}()

	exe, self := initExecutable(spec)
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	env = accounts.SessionEnv(proxyenv.StripCredentials(env), id.User, home)
	var plan runPlan
	switch spec.Network {
	case NetworkProxy:
		if env, plan, err = credentialedEnv(lease, env, spec.AllowLocalBinding, self, spec.Transparent); err != nil {
			return pre(err)
		}
	case NetworkNone:
		env = proxyenv.Merge(env, nil)
	}
	trust, err := newTrustRun(spec, env)
	if err != nil {
		closeListeners(plan.listeners)
		return pre(err)
	}
	defer trust.remove()
	env, spec.View = trust.environ(env), trust.view(spec.View)

	cfg := initproto.Config{Network: initNetwork(spec.Network), AllowUnix: spec.AllowUnixSockets, UnixSockets: unixSockets(spec), Dir: dir, Executable: self, Identity: id}
	view, err := planView(spec, home, &fsview.Owner{UID: id.UID, GID: id.GID})
	if err != nil {
		closeListeners(plan.listeners)
		return pre(err)
	}
	if cfg.View, err = viewConfig(view); err != nil {
		closeListeners(plan.listeners)
		return pre(err)
	}
	attr := syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
	}
	if spec.Transparent && spec.Network == NetworkProxy {
		// Without it CMD is confined no less: only proxy-aware programs
		// can connect.
		if tp, replace, err := newIdentityPath(spec, lease, leaser.Options.NetNS, uint32(id.UID)); err != nil {
			notify("running without the transparent path (only programs that use the proxy variables can connect): " + describe(err))
		} else {
			cfg.Replace, plan.transparent = replace, tp
			attr.UseCgroupFD, attr.CgroupFD = true, tp.group.FD()
		}
	}
	cfg.Replace = append(cfg.Replace, trust.binds()...)
	sb := &initSandbox{backend: BackendIdentity, exe: exe, command: spec.Args, cfg: cfg, env: env, attr: attr}
	plan.broken = guard.broken()
	res, err := supervise(ctx, spec, sb, plan)
	res.ViewChanged, res.ViewFindings = viewChanged(view, id.UID)
	return res, guard.settle(err)
}

// nonRootError is what a caller without root gets from the identity
// backend: the state of the setup (setup.Leaser.CheckUnprivileged), and
// that identity runs need root.
func nonRootError(l setup.Leaser, need setup.Need) error {
	err := l.CheckUnprivileged(need)
	var ue *setup.UnavailableError
	switch {
	case err == nil:
		return &UnavailableError{Reason: needRoot, Fix: needRootFix}
	case errors.As(err, &ue):
		return &UnavailableError{Reason: err.Error() + "; also, " + needRoot, Fix: needRootFix, Err: err}
	}
	return &UnavailableError{Reason: err.Error() + "; " + needRoot, Fix: needRootFix, Err: err}
}

// landlockScopingAvailable returns nil when this kernel can enforce the
// identity backend's Landlock scopes, or an *UnavailableError that says
// why not.
func landlockScopingAvailable() error {
	const fix = "use --backend netns"
	const purpose = " to close the host's abstract unix sockets to the command"
	abi, err := confine.LandlockABI()
	switch {
	case errors.Is(err, unix.ENOSYS):
		return &UnavailableError{Reason: "this kernel has no Landlock (CONFIG_SECURITY_LANDLOCK), which the identity backend needs" + purpose, Fix: fix, Err: err}
	case errors.Is(err, unix.EOPNOTSUPP):
		return &UnavailableError{Reason: "Landlock is disabled on this machine (add landlock to the lsm= boot parameter), and the identity backend needs it" + purpose, Fix: fix, Err: err}
	case err != nil:
		return &UnavailableError{Reason: "querying the Landlock ABI version: " + err.Error(), Err: err}
	case abi < confine.LandlockScopeABI:
		return &UnavailableError{Reason: fmt.Sprintf("this kernel's Landlock is ABI version %d; the identity backend needs version %d (Linux 6.12 or later)", abi, confine.LandlockScopeABI) + purpose, Fix: fix}
	}
	return nil
}

// hostRoot reports whether the process is root in the host's user
// namespace (root in a user namespace of its own cannot become the sandbox
// users, nor change the firewall).
func hostRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	return len(strings.Fields(string(b))) == 3 && strings.Join(strings.Fields(string(b)), " ") == "0 0 4294967295"
}

// sandboxIdentity returns who CMD runs as (the offline or the online user
// of the lease, with the sandbox group) and that user's home, as the
// account database has them; they must agree with the marker.
func sandboxIdentity(lease *setup.Lease, online bool) (*initproto.Identity, string, error) {
	which := ruleplan.Offline
	if online {
		which = ruleplan.Online
	}
	m := lease.Marker()
	acc, err := lease.Account()
	if err != nil {
		return nil, "", &UnavailableError{Reason: err.Error(), Err: err}
	}
	if acc.UID == 0 || acc.GID == 0 {
		return nil, "", &UnavailableError{Reason: fmt.Sprintf("the %s sandbox user %s has uid %d, gid %d", which, acc.Name, acc.UID, acc.GID), Fix: "run `sandgate setup` again"}
	}
	return &initproto.Identity{UID: int(acc.UID), GID: int(acc.GID), User: acc.Name, Group: m.Group}, acc.Home, nil
}

// workingDir returns CMD's working directory as an absolute path without
// symlinks.
func workingDir(dir string) (string, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("working directory: %w", err)
		}
		dir = wd
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("working directory %s is not a directory", dir)
	}
	return real, nil
}

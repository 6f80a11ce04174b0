//go:build linux

package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/proxy"
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

// Variables that CMD's proxy settings take, besides proxyenv's.
const (
	envSOCKSUser     = "SANDGATE_SOCKS_USER"
	envSOCKSPassword = "SANDGATE_SOCKS_PASSWORD"
)

// runIdentity runs spec with the identity backend. Failures before the
// sandbox init started are notStartedErrors.
func runIdentity(ctx context.Context, spec Spec) (Result, error) {
	pre := func(err error) (Result, error) { return Result{}, &notStartedError{err} }
	if !hostRoot() {
		return pre(adopt(identityNonRootError(spec)))
	}
	if err := landlockScopingAvailable(); err != nil {
		return pre(err)
	}
	logf := spec.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	notify := spec.notifier()
	mode := modeOf(spec)
	st, err := prepareIdentitySetup(mode, notifyWriter{notify})
	if err != nil {
		return pre(adopt(err))
	}
	defer st.release()
	m := st.marker

	id, home, err := sandboxIdentity(m, mode)
	if err != nil {
		return pre(err)
	}
	dir, err := workingDir(spec.Dir)
	if err != nil {
		return pre(err)
	}
	grant, err := grantDir(dir, uint32(id.UID), uint32(id.GID))
	if err != nil {
		return pre(err)
	}
	defer func() {
		if err := grant.release(spec.KeepDirGrant, logf); err != nil {
			notify(fmt.Sprintf("%v (the sandbox group may still have access to %s)", err, dir))
		}
	}()

	exe, self := initExecutable(spec)
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	env = identityEnv(env, id.User, home)
	var (
		listeners []net.Listener
		creds     *proxy.Credentials
	)
	switch spec.Network {
	case NetworkProxy:
		if listeners, err = reserveProxyPorts(m.ProxyPorts, m.AllowLocalBinding); err != nil {
			return pre(err)
		}
		ports := []uint16{listenerPort(listeners[0]), listenerPort(listeners[1])}
		if !setup.Covers(m, ports, mode.alb) { // cannot happen: the ports come from the marker
			closeListeners(listeners)
			return pre(&UnavailableError{Reason: fmt.Sprintf("the installed rules do not cover proxy ports %v", ports)})
		}
		if creds, err = newCredentials(); err != nil {
			closeListeners(listeners)
			return pre(adopt(err))
		}
		env = proxyEnvWithCredentials(env, creds, ports[0], ports[1], mode.alb, self)
	case NetworkNone:
		env = proxyenv.Merge(env, nil)
	}

	cfg := initproto.Config{Network: initNetwork(spec.Network), AllowUnix: spec.AllowUnixSockets, Dir: dir, Executable: self, Identity: id}
	attr := syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
	}
	sb := &initSandbox{backend: BackendIdentity, exe: exe, command: spec.Args, cfg: cfg, env: env, attr: attr}
	return supervise(ctx, spec, sb, proxyPlan{listeners: listeners, creds: creds})
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

// sandboxIdentity returns who CMD runs as in mode (the offline or the
// online user, with the sandbox group) and that user's home, as the
// account database has them; they must agree with the marker.
func sandboxIdentity(m setup.Marker, mode identityMode) (*initproto.Identity, string, error) {
	which := ruleplan.Offline
	if mode.full {
		which = ruleplan.Online
	}
	acc, err := setupIdentity(setupOptions, m, which)
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

// identityEnv points HOME, USER and LOGNAME at the sandbox user (CMD cannot
// use the caller's home) and removes sandgate's own proxy credentials.
func identityEnv(env []string, name, home string) []string {
	set := map[string]string{"HOME": home, "USER": name, "LOGNAME": name}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok || k == envSOCKSUser || k == envSOCKSPassword {
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

// reserveProxyPorts listens on 127.0.0.1 at the first two free ports of the
// reserved set (a port another run or program holds fails to bind). The
// listening sockets carry ruleplan.ProxySocketMark, without which the
// installed input rule answers every connection to them with a reset;
// setting it needs CAP_NET_ADMIN, and a run that cannot set it does not
// start.
func reserveProxyPorts(ports []uint16, alb bool) ([]net.Listener, error) {
	var got []net.Listener
	lc := net.ListenConfig{Control: markProxySocket}
	for _, p := range ports {
		ln, err := lc.Listen(context.Background(), "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p))))
		if errors.Is(err, unix.EADDRINUSE) {
			continue
		}
		if err != nil {
			closeListeners(got)
			return nil, fmt.Errorf("listening on reserved proxy port %d: %w", p, err)
		}
		got = append(got, ln)
		if len(got) == 2 {
			return got, nil
		}
	}
	closeListeners(got)
	return nil, &UnavailableError{
		Reason: fmt.Sprintf("all %d reserved proxy ports (%s) are in use: each identity run takes two", len(ports), formatPorts(ports)),
		Fix:    fmt.Sprintf("widen the range with `%s`", setupCommand(false, alb, alb, widerRange(ports))),
	}
}

// markProxySocket sets SO_MARK = ruleplan.ProxySocketMark on a proxy
// listener before it binds; connections it accepts inherit the mark.
func markProxySocket(_, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, ruleplan.ProxySocketMark)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setting the socket mark %#x (SO_MARK, which needs CAP_NET_ADMIN) that lets the offline user reach the proxy at %s: %w", ruleplan.ProxySocketMark, address, serr)
	}
	return nil
}

// widerRange suggests a port range twice the size of ports, from its lowest.
func widerRange(ports []uint16) []uint16 {
	if len(ports) == 0 {
		return setup.DefaultPorts()
	}
	lo := int(ports[0])
	for _, p := range ports {
		lo = min(lo, int(p))
	}
	var out []uint16
	for p := lo; p < lo+2*len(ports) && p <= 65535; p++ {
		out = append(out, uint16(p))
	}
	return out
}

func listenerPort(ln net.Listener) uint16 {
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// newCredentials returns random proxy credentials for one run.
func newCredentials() (*proxy.Credentials, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("sandbox: generating proxy credentials: %w", err)
	}
	return &proxy.Credentials{User: "sandgate", Password: hex.EncodeToString(b[:])}, nil
}

// proxyEnvWithCredentials replaces env's proxy settings with the run's
// proxies, credentials in their URLs. NO_PROXY and its kin are set empty
// unless local binding is allowed: the loopback here is the host's, so a
// local destination goes through the policy like any other.
func proxyEnvWithCredentials(env []string, c *proxy.Credentials, httpPort, socksPort uint16, alb bool, exe string) []string {
	userinfo := c.User + ":" + c.Password + "@"
	hostHTTP := "127.0.0.1:" + strconv.Itoa(int(httpPort))
	hostSOCKS := "127.0.0.1:" + strconv.Itoa(int(socksPort))
	cfg := proxyenv.Config{
		HTTP:       "http://" + userinfo + hostHTTP,
		SOCKS:      "socks5h://" + userinfo + hostSOCKS,
		Executable: exe,
	}
	if alb {
		cfg.NoProxy = proxyenv.DefaultNoProxy
	}
	vars := proxyenv.Vars(cfg)
	for i, kv := range vars {
		// rsync takes credentials as user:password@host:port.
		if strings.HasPrefix(kv, "RSYNC_PROXY=") {
			vars[i] = "RSYNC_PROXY=" + userinfo + hostHTTP
		}
	}
	if !alb {
		vars = append(vars, "NO_PROXY=", "no_proxy=", "npm_config_noproxy=", "NPM_CONFIG_NOPROXY=")
	}
	// `sandgate socks-connect` (GIT_SSH_COMMAND) reads these.
	vars = append(vars, envSOCKSUser+"="+c.User, envSOCKSPassword+"="+c.Password)
	return proxyenv.Merge(env, vars)
}

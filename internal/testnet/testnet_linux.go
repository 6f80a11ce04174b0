//go:build linux

package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Addresses of the two ends of a Pair, from documentation ranges.
const (
	HostV4   = "192.0.2.1"
	RemoteV4 = "192.0.2.2"
	HostV6   = "2001:db8::1"
	RemoteV6 = "2001:db8::2"
)

// Prefix starts the name of every namespace (and veth device) the helpers
// name themselves.
const Prefix = "sgtest-"

// RequirePrivileged skips the test when it cannot run (not root), unless
// SANDGATE_REQUIRE_PRIVILEGED is set, as in CI, where it fails instead.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") != "" {
		t.Fatal("this test needs root (SANDGATE_REQUIRE_PRIVILEGED is set, so it may not skip)")
	}
	t.Skip("needs root: creates network namespaces")
}

// UniqueName returns Prefix followed by n random hex digits.
func UniqueName(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return Prefix + hex.EncodeToString(b)[:n]
}

// NS is a network namespace made by this package.
type NS struct {
	// Name is the namespace's name under /run/netns, so that `ip netns
	// exec NAME` and `ip -n NAME` find it; "" for an anonymous one.
	Name string
	// Path opens the namespace (for setns, or a netns option of the code
	// under test): /run/netns/NAME, or /proc/PID/fd/N of this process
	// for an anonymous one.
	Path string
	fd   *os.File // holds an anonymous namespace alive

	borrowed bool // made by At: not this package's to remove
}

// At is the existing network namespace at path (such as /proc/PID/ns/net
// or a Path of another NS), for Do, Start, Run and IP. Its Close does
// nothing.
func At(path string) *NS { return &NS{Path: path, borrowed: true} }

// Create makes the named network namespace name (with `ip netns add`) and
// brings its loopback up. Close removes it.
func Create(name string) (*NS, error) {
	if err := needIP(); err != nil {
		return nil, err
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	n := &NS{Name: name, Path: "/run/netns/" + name}
	if _, err := n.IP("link", "set", "lo", "up"); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

// CreateAnonymous makes a network namespace without a name, with its
// loopback up (with `ip`, like the rest). It lives until Close, or until
// this process ends.
func CreateAnonymous() (*NS, error) {
	if err := needIP(); err != nil {
		return nil, err
	}
	fdc := make(chan *os.File, 1)
	errc := make(chan error, 1)
	go func() {
		// The thread is left in the new namespace and never unlocked:
		// it ends with this goroutine, and nothing else runs on it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		fdc <- f
	}()
	var n *NS
	select {
	case err := <-errc:
		return nil, err
	case f := <-fdc:
		n = &NS{Path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()), fd: f}
	}
	if _, err := n.IP("link", "set", "lo", "up"); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

// New makes a named network namespace with a unique name for t (see
// Create); t's cleanup removes it. It skips or fails t as
// RequirePrivileged does.
func New(t testing.TB) *NS {
	t.Helper()
	RequirePrivileged(t)
	n, err := Create(UniqueName(8))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOrFail(t, n) })
	return n
}

// NewAnonymous makes an anonymous network namespace for t (see
// CreateAnonymous); t's cleanup releases it.
func NewAnonymous(t testing.TB) *NS {
	t.Helper()
	RequirePrivileged(t)
	n, err := CreateAnonymous()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOrFail(t, n) })
	return n
}

func closeOrFail(t testing.TB, n *NS) {
	if err := n.Close(); err != nil {
		t.Errorf("removing a test network namespace: %v", err)
	}
}

// Close removes a named namespace (processes still inside keep it alive
// until they end) or lets an anonymous one go.
func (n *NS) Close() error {
	if n.borrowed {
		return nil
	}
	if n.fd != nil {
		return n.fd.Close()
	}
	return Delete(n.Name)
}

// Delete removes the named network namespace name, as `ip netns delete`.
func Delete(name string) error {
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Do runs fn on an OS thread switched into the namespace. The thread is
// thrown away afterwards, so nothing else ever runs in it; sockets fn
// creates stay in the namespace, and child processes fn starts begin
// there (but see Start about Pdeathsig).
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := n.enter(); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func (n *NS) enter() error {
	f, err := os.Open(n.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", n.Path, err)
	}
	return nil
}

// Start starts cmd inside the namespace and returns a function that waits
// for it. The thread that started cmd stays alive until cmd ends, so a
// Pdeathsig in cmd.SysProcAttr (which the kernel sends when the starting
// thread ends) fires only when this process dies.
func (n *NS) Start(cmd *exec.Cmd) (wait func() error, err error) {
	started, done := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := n.enter(); err != nil {
			started <- err
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return func() error { return <-done }, nil
}

// Run runs cmd inside the namespace and waits for it (see Start).
func (n *NS) Run(cmd *exec.Cmd) error {
	wait, err := n.Start(cmd)
	if err != nil {
		return err
	}
	return wait()
}

// IP runs `ip ARGS...` inside the namespace and returns its output.
func (n *NS) IP(args ...string) (string, error) {
	var out strings.Builder
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := n.Run(cmd); err != nil {
		return out.String(), fmt.Errorf("ip %s in %s: %w: %s", strings.Join(args, " "), n, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Sysctl writes value to /proc/sys/KEY (KEY with slashes, such as
// "net/ipv4/ping_group_range") inside the namespace.
func (n *NS) Sysctl(key, value string) error {
	return n.Do(func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
	})
}

// String names the namespace in messages.
func (n *NS) String() string {
	if n.Name != "" {
		return "network namespace " + n.Name
	}
	return "network namespace " + n.Path
}

// Veth joins a and b with a veth pair, device aDev in a and bDev in b,
// gives each end its addresses (CIDR, such as "192.0.2.1/24"; IPv6 ones
// usable at once, without duplicate address detection), brings both up and
// waits until both see their carrier. The pair goes away with either
// namespace.
func Veth(a *NS, aDev string, aAddrs []string, b *NS, bDev string, bAddrs []string) error {
	if _, err := a.IP("link", "add", aDev, "type", "veth", "peer", "name", bDev, "netns", b.Path); err != nil {
		return err
	}
	for _, end := range []struct {
		ns    *NS
		dev   string
		addrs []string
	}{{a, aDev, aAddrs}, {b, bDev, bAddrs}} {
		for _, addr := range end.addrs {
			args := []string{"addr", "add", addr, "dev", end.dev}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			if _, err := end.ns.IP(args...); err != nil {
				return err
			}
		}
		if _, err := end.ns.IP("link", "set", end.dev, "up"); err != nil {
			return err
		}
	}
	if err := a.WaitLinkUp(aDev, 5*time.Second); err != nil {
		return err
	}
	return b.WaitLinkUp(bDev, 5*time.Second)
}

// WaitLinkUp waits, at most timeout, until dev in the namespace is
// operationally up: a new veth drops what it is given until the kernel has
// noticed its carrier, up to a second after it was brought up.
func (n *NS) WaitLinkUp(dev string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := n.IP("-o", "link", "show", "dev", dev)
		if err != nil {
			return err
		}
		if strings.Contains(out, "state UP") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s in %s never came up: %s", dev, n, strings.TrimSpace(out))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NewPair makes two namespaces for t, a "host" and a "remote", each with
// its loopback up, joined by a veth pair (veth0 in the host with HostV4/24
// and HostV6/64, veth1 in the remote with RemoteV4/24 and RemoteV6/64),
// its carrier up. Anonymous namespaces, so a crashed test leaves nothing
// behind; t's cleanup releases them.
func NewPair(t testing.TB) (host, remote *NS) {
	t.Helper()
	host, remote = NewAnonymous(t), NewAnonymous(t)
	if err := Veth(host, "veth0", []string{HostV4 + "/24", HostV6 + "/64"}, remote, "veth1", []string{RemoteV4 + "/24", RemoteV6 + "/64"}); err != nil {
		t.Fatal(err)
	}
	return host, remote
}

// needIP says when the ip command (iproute2), which the helpers use, is
// missing.
func needIP() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("network namespaces for tests need ip (iproute2): %w", err)
	}
	return nil
}

//go:build linux

package nfttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/testnet"
)

// Addresses of the two namespaces (documentation ranges; those of a
// testnet pair).
const (
	HostV4   = testnet.HostV4
	RemoteV4 = testnet.RemoteV4
	HostV6   = testnet.HostV6
	RemoteV6 = testnet.RemoteV6
)

// Ports the world serves.
const (
	RemoteTCPPort = 80   // TCP listener in the remote namespace (v4 and v6)
	RemoteUDPPort = 5300 // UDP echo in the remote namespace (v4 and v6)
	LocalUDPPort  = 5301 // UDP echo in the host namespace, on every address
)

// World is a pair of network namespaces joined by a veth link.
type World struct {
	Host   string // path of the host namespace
	Remote string // path of the remote namespace

	HostNS, RemoteNS *testnet.NS
}

// NewWorld builds a host and a remote namespace, each with lo up, joined by
// a veth link (testnet.NewPair: host 192.0.2.1 and 2001:db8::1, remote .2
// and ::2), and serves: in the remote, TCP on RemoteTCPPort and UDP echo on
// RemoteUDPPort; in the host, TCP on each of localTCP and UDP echo on
// LocalUDPPort, on every address. Every user of the host namespace may open
// ICMP echo sockets. Everything is removed when the test ends.
func NewWorld(t testing.TB, localTCP ...int) *World {
	t.Helper()
	host, remote := testnet.NewPair(t)
	w := &World{Host: host.Path, Remote: remote.Path, HostNS: host, RemoteNS: remote}
	if err := host.Sysctl("net/ipv4/ping_group_range", "0 2147483647"); err != nil {
		t.Fatalf("allowing ICMP echo sockets in the host namespace: %v", err)
	}
	w.serveTCP(t, remote, RemoteTCPPort, 0)
	w.serveUDP(t, remote, RemoteUDPPort)
	for _, p := range localTCP {
		w.serveTCP(t, host, p, 0)
	}
	w.serveUDP(t, host, LocalUDPPort)
	return w
}

// ServeMarkedTCP serves TCP in the host namespace, on every address at
// port, like the listeners NewWorld makes, from a listening socket whose
// SO_MARK is mark (as sandgate's proxy marks its listeners).
func (w *World) ServeMarkedTCP(t testing.TB, port int, mark uint32) {
	t.Helper()
	w.serveTCP(t, w.HostNS, port, mark)
}

// serveTCP accepts connections on every address of ns at port and closes
// them after writing "hi". A non-zero mark is set as the listening
// socket's SO_MARK.
func (w *World) serveTCP(t testing.TB, ns *testnet.NS, port int, mark uint32) {
	t.Helper()
	var ln net.Listener
	lc := net.ListenConfig{}
	if mark != 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			}); err != nil {
				return err
			}
			return serr
		}
	}
	if err := ns.Do(func() (err error) {
		ln, err = lc.Listen(context.Background(), "tcp", ":"+strconv.Itoa(port))
		return err
	}); err != nil {
		t.Fatalf("listening on TCP port %d in %s: %v", port, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
}

// serveUDP echoes datagrams on every address of ns at port.
func (w *World) serveUDP(t testing.TB, ns *testnet.NS, port int) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", ":"+strconv.Itoa(port))
		return err
	}); err != nil {
		t.Fatalf("listening on UDP port %d in %s: %v", port, ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// Check is one connection attempt.
type Check struct {
	// Kind: "tcp", "mptcp", "tcp6mapped" (an AF_INET6 TCP socket to
	// the IPv4-mapped form of an IPv4 address), "udp" (a datagram that
	// must come back) or "icmp" (an echo request that must be answered).
	Kind string
	// Addr is HOST:PORT for tcp, mptcp, tcp6mapped and udp; an IP for icmp.
	Addr string
}

// String writes the check as "KIND ADDR".
func (c Check) String() string { return c.Kind + " " + c.Addr }

// Outcomes of a check.
const (
	OK          = "ok"          // the connection or exchange worked
	Refused     = "refused"     // ECONNREFUSED (a TCP reset)
	Denied      = "denied"      // EPERM/EACCES from the local firewall
	Timeout     = "timeout"     // nothing came back in time
	Unreachable = "unreachable" // no route
)

// Result is the outcome of a Check: one of the constants above, or an
// "error: ..." text.
type Result struct {
	Check   Check
	Outcome string
	Elapsed time.Duration
}

// probeEnv names the environment variable that turns the test binary into a
// probe; it holds "UID:GID".
const probeEnv = "SANDGATE_NFTTEST_PROBE"

// probeTimeout bounds each check.
const probeTimeout = 1200 * time.Millisecond

// MaybeProbe turns the process into a probe when it was started as one by
// Probe: call it first in TestMain. It does not return then.
func MaybeProbe() {
	ids := os.Getenv(probeEnv)
	if ids == "" {
		return
	}
	os.Exit(runProbe(ids))
}

// Probe runs checks from a child process inside the network namespace ns,
// as uid and gid with no supplementary groups and no capabilities, and
// returns the results in order. The test binary must call MaybeProbe in
// TestMain.
func Probe(t testing.TB, ns string, uid, gid uint32, checks ...Check) []Result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(checks)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The child starts as root (it may not be able to reach the test
	// binary's private directory otherwise) and drops to uid:gid itself
	// before it opens a socket.
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = []string{probeEnv + "=" + fmt.Sprintf("%d:%d", uid, gid), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := testnet.At(ns).Run(cmd); err != nil {
		t.Fatalf("probe as uid %d in %s: %v; stderr:\n%s", uid, ns, err, stderr.String())
	}
	var rep probeReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("probe output: %v: %q; stderr:\n%s", err, stdout.String(), stderr.String())
	}
	if rep.UID != uid || rep.GID != gid || len(rep.Groups) != 0 || (uid != 0 && rep.CapEff != 0) {
		t.Fatalf("probe ran as uid %d gid %d groups %v capabilities %#x, want uid %d gid %d and nothing else", rep.UID, rep.GID, rep.Groups, rep.CapEff, uid, gid)
	}
	if len(rep.Results) != len(checks) {
		t.Fatalf("probe returned %d results for %d checks", len(rep.Results), len(checks))
	}
	return rep.Results
}

type probeReport struct {
	UID, GID uint32
	Groups   []int
	CapEff   uint64
	Results  []Result
}

func runProbe(ids string) int {
	uid, gid, ok := strings.Cut(ids, ":")
	u, err1 := strconv.ParseUint(uid, 10, 32)
	g, err2 := strconv.ParseUint(gid, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "probe: bad %s=%q\n", probeEnv, ids)
		return 2
	}
	var checks []Check
	if err := json.NewDecoder(os.Stdin).Decode(&checks); err != nil {
		fmt.Fprintf(os.Stderr, "probe: reading checks: %v\n", err)
		return 2
	}
	// syscall's set*id calls change every thread of the process.
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintf(os.Stderr, "probe: setgroups: %v\n", err)
		return 2
	}
	if err := syscall.Setresgid(int(g), int(g), int(g)); err != nil {
		fmt.Fprintf(os.Stderr, "probe: setresgid: %v\n", err)
		return 2
	}
	if err := syscall.Setresuid(int(u), int(u), int(u)); err != nil {
		fmt.Fprintf(os.Stderr, "probe: setresuid: %v\n", err)
		return 2
	}
	rep := probeReport{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), CapEff: capEff()}
	rep.Groups, _ = os.Getgroups()
	rep.Results = make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := runCheck(c)
			rep.Results[i] = Result{Check: c, Outcome: classify(err), Elapsed: time.Since(start)}
		}()
	}
	wg.Wait()
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 2
	}
	return 0
}

// capEff reads the effective capability set of this thread group.
func capEff() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ^uint64(0)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return ^uint64(0)
			}
			return n
		}
	}
	return ^uint64(0)
}

func runCheck(c Check) error {
	switch c.Kind {
	case "tcp", "mptcp":
		d := net.Dialer{Timeout: probeTimeout}
		d.SetMultipathTCP(c.Kind == "mptcp")
		conn, err := d.Dial("tcp", c.Addr)
		if err != nil {
			return err
		}
		return conn.Close()
	case "tcp6mapped":
		return dialMapped(c.Addr)
	case "udp":
		conn, err := net.Dial("udp", c.Addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(probeTimeout))
		if _, err := conn.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "ping" {
			return fmt.Errorf("got %q back", buf[:n])
		}
		return nil
	case "icmp":
		return ping(c.Addr)
	}
	return fmt.Errorf("unknown check kind %q", c.Kind)
}

// dialMapped connects an AF_INET6 TCP socket to ::ffff:A.B.C.D:PORT (Go's
// net package would use an AF_INET socket for such an address).
func dialMapped(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host).To4()
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return fmt.Errorf("bad address %q", addr)
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		return err
	}
	sa := &unix.SockaddrInet6{Port: p}
	copy(sa.Addr[:], net.IPv4(ip[0], ip[1], ip[2], ip[3]).To16())
	err = unix.Connect(fd, sa)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, int(probeTimeout/time.Millisecond))
	if err != nil {
		return err
	}
	if n == 0 {
		return os.ErrDeadlineExceeded
	}
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soErr != 0 {
		return syscall.Errno(soErr)
	}
	return nil
}

// ping sends one ICMP echo request from an unprivileged ICMP socket and
// waits for the reply.
func ping(host string) error {
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("bad address %q", host)
	}
	network, laddr, proto := "udp4", "0.0.0.0", 1
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if ip.To4() == nil {
		network, laddr, proto = "udp6", "::", 58
		typ = ipv6.ICMPTypeEchoRequest
	}
	c, err := icmp.ListenPacket(network, laddr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("sgtest")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.WriteTo(b, &net.UDPAddr{IP: ip}); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		if m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply {
			return nil
		}
	}
}

func classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return OK
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return Denied
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return Unreachable
	}
	return "error: " + err.Error()
}

// Expect is what a check should come to: OK, a specific outcome, or
// Blocked (anything but OK).
type Expect struct {
	Check Check
	Want  string
}

// Blocked, as an Expect.Want, accepts any outcome but OK.
const Blocked = "blocked"

// ExpectAll probes the checks of expects as uid:gid in ns and reports,
// in one error per mismatch, every check whose outcome is not the wanted
// one. label names the identity in messages.
func ExpectAll(t testing.TB, label, ns string, uid, gid uint32, expects ...Expect) {
	t.Helper()
	checks := make([]Check, len(expects))
	for i, e := range expects {
		checks[i] = e.Check
	}
	res := Probe(t, ns, uid, gid, checks...)
	for i, e := range expects {
		got := res[i].Outcome
		bad := got != e.Want
		if e.Want == Blocked {
			bad = got == OK
		}
		if bad {
			t.Errorf("%s: %s: got %s after %v, want %s", label, e.Check, got, res[i].Elapsed.Round(time.Millisecond), e.Want)
		}
	}
}

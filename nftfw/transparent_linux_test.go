//go:build linux

package nftfw

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	xicmp "golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/testnet"
	"github.com/sandgate/sandgate/netroute"
	"github.com/sandgate/sandgate/nftfw/nfttest"
	"github.com/sandgate/sandgate/origdst"
	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/runcgroup"
)

func TestTransparentKernelNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"NF_IP_PRI_NAT_DST", priorityDstNAT, int64(*nftables.ChainPriorityNATDest)},
		{"NFT_REJECT_ICMPX_ADMIN_PROHIBITED", icmpxAdminProhibited, unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED},
		{"NFT_SOCKET_CGROUPV2", socketCgroupV2, int64(expr.SocketKeyCgroupv2)},
		{"NF_NAT_RANGE_PROTO_SPECIFIED", natRangeProtoSpecfied, unix.NF_NAT_RANGE_PROTO_SPECIFIED},
		{"NFT_CT_STATUS", ctKeyStatus, unix.NFT_CT_STATUS},
		{"NF_ACCEPT verdict", verdictAccept, int64(expr.VerdictAccept)},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d here, %d in Linux", c.name, c.got, c.want)
		}
	}
}

// acceptOne accepts one connection on ln within a few seconds.
func acceptOne(t *testing.T, ln net.Listener) (net.Conn, error) {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// sandboxListeners makes, inside ns, the transparent listener on 127.0.0.1
// and [::1] at one port, and a DNS stub stand-in that answers "dns:" and
// the query over UDP (both families) and accepts TCP (IPv4).
func sandboxListeners(t *testing.T, ns *testnet.NS) (ln4, ln6, dnsTCP net.Listener, tcpPort, dnsPort uint16) {
	t.Helper()
	var udp4, udp6 net.PacketConn
	if err := ns.Do(func() (err error) {
		if ln4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		tcpPort = uint16(ln4.Addr().(*net.TCPAddr).Port)
		if ln6, err = net.Listen("tcp6", fmt.Sprintf("[::1]:%d", tcpPort)); err != nil {
			return err
		}
		if udp4, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			return err
		}
		dnsPort = uint16(udp4.LocalAddr().(*net.UDPAddr).Port)
		if udp6, err = net.ListenPacket("udp6", fmt.Sprintf("[::1]:%d", dnsPort)); err != nil {
			return err
		}
		dnsTCP, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", dnsPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface{ Close() error }{ln4, ln6, dnsTCP, udp4, udp6} {
		t.Cleanup(func() { c.Close() })
	}
	for _, pc := range []net.PacketConn{udp4, udp6} {
		go func() {
			buf := make([]byte, 512)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(append([]byte("dns:"), buf[:n]...), from)
			}
		}()
	}
	return ln4, ln6, dnsTCP, tcpPort, dnsPort
}

// refused reports whether err is how a packet refused on the way out
// shows: EPERM from the send itself (the output hook dropped the packet)
// or ECONNREFUSED (the ICMP error came back first).
func refused(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ECONNREFUSED)
}

// udpExchange sends "q" to addr from inside ns and returns the answer (or
// the error), waiting at most two seconds.
func udpExchange(ns *testnet.NS, addr string) (string, net.Addr, error) {
	var answer string
	var from net.Addr
	err := ns.Do(func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("q")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		answer, from = string(buf[:n]), c.RemoteAddr()
		return err
	})
	return answer, from, err
}

// TestSandboxTransparent applies the sandbox's rules in a namespace of the
// test's own, with only its loopback and the default route through it, as
// a sandbox has, and checks what each kind of traffic meets.
func TestSandboxTransparent(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	if err := ns.Sysctl("net/ipv4/ping_group_range", "0 2147483647"); err != nil {
		t.Fatal(err)
	}
	if err := netroute.DefaultViaLoopback(ns.Path); err != nil {
		t.Fatal(err)
	}
	ln4, ln6, dnsTCP, tcpPort, dnsPort := sandboxListeners(t, ns)
	if err := ApplySandbox(ns.Path, SandboxPlan{TCPPort: tcpPort, DNSPort: dnsPort}); err != nil {
		t.Fatal(err)
	}

	// TCP to any non-local address reaches the listener of its family,
	// which learns where it was going.
	for _, tc := range []struct {
		dial string
		ln   net.Listener
	}{
		{"192.0.2.10:80", ln4}, {"198.18.0.1:5432", ln4}, {"[2001:db8::10]:443", ln6}, {"[fd00::7]:22", ln6}, {"192.0.2.53:53", dnsTCP},
	} {
		var c net.Conn
		if err := ns.Do(func() (err error) { c, err = net.DialTimeout("tcp", tc.dial, 3*time.Second); return err }); err != nil {
			t.Errorf("TCP to %s: %v", tc.dial, err)
			continue
		}
		s, err := acceptOne(t, tc.ln)
		if err != nil {
			t.Errorf("TCP to %s did not reach %s: %v", tc.dial, tc.ln.Addr(), err)
		} else if od, err := origdst.Of(s); err != nil || od != netip.MustParseAddrPort(tc.dial) {
			t.Errorf("TCP to %s: original destination %v, %v", tc.dial, od, err)
		}
		c.Close()
	}

	// DNS to port 53 of any address reaches the stub; the answer comes
	// back from the address asked.
	for _, addr := range []string{"192.0.2.53:53", "127.0.0.1:53", "[2001:db8::53]:53"} {
		answer, from, err := udpExchange(ns, addr)
		if err != nil || answer != "dns:q" || from.String() != addr {
			t.Errorf("DNS to %s: %q from %v, %v", addr, answer, from, err)
		}
	}
	// Other UDP (QUIC) to non-local addresses is refused at once.
	for _, addr := range []string{"192.0.2.10:443", "[2001:db8::10]:443"} {
		start := time.Now()
		if _, _, err := udpExchange(ns, addr); !refused(err) || time.Since(start) > time.Second {
			t.Errorf("UDP to %s: %v after %v, want a refusal at once", addr, err, time.Since(start))
		}
	}
	// ICMP echo gets no answer.
	if err := ns.Do(func() error {
		c, err := xicmp.ListenPacket("udp4", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		msg, _ := (&xicmp.Message{Type: ipv4.ICMPTypeEcho, Body: &xicmp.Echo{ID: 1, Seq: 1, Data: []byte("x")}}).Marshal(nil)
		if _, err := c.WriteTo(msg, &net.UDPAddr{IP: net.ParseIP("192.0.2.10")}); err != nil {
			return nil // refused on the way out: as good
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, _, err := c.ReadFrom(make([]byte, 64)); err == nil {
			return fmt.Errorf("an answer of %d bytes to a ping of 192.0.2.10", n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// Loopback is the sandbox's own and untouched: UDP to a local port
	// that is not 53 is not refused by the rules (nothing listens, so the
	// kernel itself answers ECONNREFUSED, and the counters do not move).
	before, err := SandboxRefusals(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := udpExchange(ns, "127.0.0.1:9"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("UDP to an unused loopback port: %v", err)
	}
	after, err := SandboxRefusals(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	if after != before || after.UDP < 2 || after.Other < 1 || after.TCP != 0 {
		t.Errorf("refusals before the loopback exchange %+v, after %+v; want UDP >= 2, Other >= 1, TCP 0, unchanged", before, after)
	}
	// Applying again replaces the table (and so its counters).
	if err := ApplySandbox(ns.Path, SandboxPlan{TCPPort: tcpPort}); err != nil {
		t.Fatal(err)
	}
	if r, err := SandboxRefusals(ns.Path); err != nil || r.Total() != 0 {
		t.Errorf("after re-applying: %+v, %v", r, err)
	}
	if _, _, err := udpExchange(ns, "192.0.2.53:53"); !refused(err) {
		t.Errorf("DNS without a stub port: %v, want a refusal", err)
	}
}

// TestApplySandboxCounters checks the socket ApplySandboxCounters keeps:
// the table is in force, the socket is blocking and close-on-exec (as
// OpenCounterSocket's), reads the table's counters, and its close is the
// one that ends it (the library's own descriptor is closed already).
func TestApplySandboxCounters(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	if err := netroute.DefaultViaLoopback(ns.Path); err != nil {
		t.Fatal(err)
	}
	f, err := ApplySandboxCounters(ns.Path, SandboxPlan{TCPPort: 40001, DNSPort: 40002})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fd := int(f.Fd())
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("file status flags %#x, %v: want blocking", fl, err)
	}
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("descriptor flags %#x, %v: want close-on-exec", fl, err)
	}
	if _, _, err := udpExchange(ns, "192.0.2.10:443"); !refused(err) {
		t.Errorf("UDP to 192.0.2.10:443: %v, want a refusal (the table in force)", err)
	}
	r, err := ReadSandboxRefusals(f)
	if err != nil || r.UDP != 1 {
		t.Errorf("refusals through the kept socket: %+v, %v; want one UDP", r, err)
	}
	// Twice: the first dump left nothing behind that confuses the next.
	if r, err := ReadSandboxRefusals(f); err != nil || r.UDP != 1 {
		t.Errorf("refusals read again: %+v, %v", r, err)
	}
}

// TestCloseCounterSocket checks that CloseCounterSocket closes the
// descriptor at once and that the kernel then releases the socket (it is
// gone from the namespace's netlink sockets), right after a transaction
// whose cleanup a plain close would wait for.
func TestCloseCounterSocket(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	f, err := ApplySandboxCounters(ns.Path, SandboxPlan{TCPPort: 40001, DNSPort: 40002})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	fd := int(f.Fd())
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	inode := strconv.FormatUint(st.Ino, 10)
	if !netlinkSocketListed(t, ns, inode) {
		t.Fatalf("socket inode %s is not among the namespace's netlink sockets to begin with", inode)
	}
	CloseCounterSocket(f)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("descriptor %d after CloseCounterSocket: %v, want EBADF", fd, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for netlinkSocketListed(t, ns, inode) {
		if time.Now().After(deadline) {
			t.Fatalf("the kernel did not release socket inode %s within 10 s", inode)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// netlinkSocketListed reports whether a netlink socket with inode is open
// in the network namespace ns (/proc/net/netlink as seen from there).
func netlinkSocketListed(t *testing.T, ns *testnet.NS, inode string) bool {
	t.Helper()
	var found bool
	if err := ns.Do(func() error {
		data, err := os.ReadFile("/proc/thread-self/net/netlink")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == inode {
				found = true
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// identityRun is one test run: its cgroup, its transparent listener and
// DNS stand-in in the host namespace, each answering with the run's name.
type identityRun struct {
	IdentityRun
	group *runcgroup.Group
}

func newIdentityRun(t *testing.T, w *nfttest.World, id string, uid uint32, mark uint32) *identityRun {
	t.Helper()
	g, err := runcgroup.Create(cgroupParent, id+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The last run's cleanup removes the parent the runs share.
		if err := os.Remove(filepath.Dir(g.Path)); err != nil && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) {
			t.Error(err)
		}
	})
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	})
	var ln net.Listener
	var pc net.PacketConn
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)) })
		return serr
	}}
	if err := w.HostNS.Do(func() (err error) {
		if ln, err = lc.Listen(t.Context(), "tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		pc, err = lc.ListenPacket(t.Context(), "udp4", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			od, err := origdst.Of(c)
			fmt.Fprintf(c, "%s %v %v\n", id, od, err)
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(id+" dns "), buf[:n]...), from)
		}
	}()
	return &identityRun{
		IdentityRun: IdentityRun{
			ID: id, UID: uid, CgroupID: g.ID, CgroupLevel: g.Level,
			TCPPort: uint16(ln.Addr().(*net.TCPAddr).Port),
			DNSPort: uint16(pc.LocalAddr().(*net.UDPAddr).Port),
		},
		group: g,
	}
}

// cgroupParent holds the test runs' cgroups (under the cgroup v2 mount).
var cgroupParent = testnet.UniqueName(8)

// script is what the child shell does: a TCP connection to the remote's
// port 80 (which answers "hi", and the run's listener its name), a DNS
// query and two datagrams to the remote's UDP echo (the second fails at
// once when the first was refused).
const script = `exec 3<>/dev/tcp/` + nfttest.RemoteV4 + `/80 && timeout 2 cat <&3
exec 4<>/dev/udp/` + nfttest.RemoteV4 + `/53
{ echo q >&4 && timeout 2 dd bs=512 count=1 status=none <&4; } 2>/dev/null || echo "dns: nothing"
exec 5<>/dev/udp/` + nfttest.RemoteV4 + `/5300
{ echo a >&5 && sleep 0.2 && echo b >&5; } 2>/dev/null && echo "udp: sent" || echo "udp: refused"
exit 0
`

// runChild runs the script as uid in the host namespace, in group (nil:
// the test's own cgroup), and returns its output.
func runChild(t *testing.T, w *nfttest.World, uid uint32, group *runcgroup.Group) string {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	if group != nil {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, group.FD()
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := w.HostNS.Run(cmd); err != nil {
		t.Fatalf("child as uid %d: %v\n%s", uid, err, out.String())
	}
	t.Logf("child as uid %d in %v:\n%s", uid, group != nil, out.String())
	return out.String()
}

// TestIdentityRuns installs two concurrent runs' rules in a test "host"
// namespace and runs children as the offline uid: each run's child is
// redirected to its own run's listener and DNS stand-in and has its UDP
// refused; the same uid outside the runs' cgroups, and another uid inside
// one, reach the remote untouched.
func TestIdentityRuns(t *testing.T) {
	testnet.RequirePrivileged(t)
	w := nfttest.NewWorld(t)
	const uid, other = 4000301, 4000302
	r1 := newIdentityRun(t, w, "run-a", uid, 0)
	r2 := newIdentityRun(t, w, "run-b", uid, 0)
	r2.DNSPort = 0
	for _, r := range []*identityRun{r1, r2} {
		if err := AddRun(w.Host, r.IdentityRun); err != nil {
			t.Fatal(err)
		}
	}
	// Adding again replaces the run's rules rather than doubling them.
	if err := AddRun(w.Host, r1.IdentityRun); err != nil {
		t.Fatal(err)
	}
	remote := nfttest.RemoteV4 + ":80"
	if out := runChild(t, w, uid, r1.group); !strings.Contains(out, "run-a "+remote+" <nil>\n") ||
		!strings.Contains(out, "run-a dns q\n") || !strings.Contains(out, "udp: refused") {
		t.Errorf("run a's child:\n%s", out)
	}
	if out := runChild(t, w, uid, r2.group); !strings.Contains(out, "run-b "+remote+" <nil>\n") ||
		!strings.Contains(out, "dns: nothing") || !strings.Contains(out, "udp: refused") {
		t.Errorf("run b's child (no DNS stub: its query is refused like other UDP):\n%s", out)
	}
	for _, c := range []struct {
		what  string
		uid   uint32
		group *runcgroup.Group
	}{{"the offline uid outside the runs", uid, nil}, {"another uid in run a's cgroup", other, r1.group}} {
		if out := runChild(t, w, c.uid, c.group); !strings.HasPrefix(out, "hi") || !strings.Contains(out, "udp: sent") || strings.Contains(out, "run-") {
			t.Errorf("%s:\n%s", c.what, out)
		}
	}
	counts, err := RunRefusals(w.Host, "run-a")
	if err != nil || counts.UDP < 1 || counts.Other != 0 {
		t.Errorf("run a's refusals %+v, %v; want UDP >= 1", counts, err)
	}
	removed, err := RemoveRun(w.Host, "run-a")
	if err != nil || removed != counts {
		t.Errorf("RemoveRun = %+v, %v; want the counts %+v", removed, err, counts)
	}
	if out := runChild(t, w, uid, r1.group); !strings.HasPrefix(out, "hi") {
		t.Errorf("run a's child after RemoveRun:\n%s", out)
	}
	if err := PruneRuns(w.Host, func(id string) bool { return id != "run-b" }); err != nil {
		t.Fatal(err)
	}
	if rules, err := runRules(w.Host, "run-b"); err != nil || len(rules) != 0 {
		t.Errorf("run b's rules after PruneRuns: %d, %v", len(rules), err)
	}
	if err := RemoveRunTable(w.Host); err != nil {
		t.Fatal(err)
	}
	if err := RemoveRunTable(w.Host); err != nil {
		t.Errorf("removing a missing table: %v", err)
	}
}

// TestIdentityRunWithSetupTable: with setup's table installed too, a
// redirected connection gets through only to a port of the reserved set
// served by a marked listener (setup's rules refuse local TCP to any other
// port, and its input guard refuses unmarked listeners on those ports),
// and so does a redirected DNS query over UDP: to a marked stub on a
// reserved port it is answered; to an unmarked one, or to a marked one
// outside the reserved set, it gets nothing.
func TestIdentityRunWithSetupTable(t *testing.T) {
	testnet.RequirePrivileged(t)
	w := nfttest.NewWorld(t)
	const uid = 4000303
	marked := newIdentityRun(t, w, "run-m", uid, ruleplan.ProxySocketMark)
	plain := newIdentityRun(t, w, "run-p", uid, 0)
	outside := newIdentityRun(t, w, "run-o", uid, ruleplan.ProxySocketMark) // its DNS port is not reserved
	plan := mustPlan(t, []uint16{marked.TCPPort, plain.TCPPort, outside.TCPPort, marked.DNSPort, plain.DNSPort}, false)
	if err := Apply(w.Host, plan, uid); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*identityRun{marked, plain, outside} {
		if err := AddRun(w.Host, r.IdentityRun); err != nil {
			t.Fatal(err)
		}
	}
	if out := runChild(t, w, uid, marked.group); !strings.Contains(out, "run-m "+nfttest.RemoteV4+":80 <nil>") ||
		!strings.Contains(out, "run-m dns q\n") || !strings.Contains(out, "udp: refused") {
		t.Errorf("marked listener and stub on reserved ports:\n%s", out)
	}
	if out := runChild(t, w, uid, plain.group); strings.Contains(out, "run-p") || strings.HasPrefix(out, "hi") || !strings.Contains(out, "dns: nothing") {
		t.Errorf("unmarked listener and stub on reserved ports:\n%s", out)
	}
	if out := runChild(t, w, uid, outside.group); !strings.Contains(out, "run-o "+nfttest.RemoteV4+":80 <nil>") || !strings.Contains(out, "dns: nothing") {
		t.Errorf("marked stub outside the reserved ports:\n%s", out)
	}
	if diffs, err := Verify(w.Host, plan, uid); err != nil || len(diffs) != 0 {
		t.Errorf("setup's table with runs' rules beside it: %q, %v", diffs, err)
	}
}

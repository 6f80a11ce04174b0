//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// The fake internet's addresses, all from documentation ranges.
const (
	hostV4    = "192.0.2.1"      // the host's "LAN" address, on the veth
	hostV6    = "2001:db8:1::1"  // the same, IPv6
	remoteV4  = "203.0.113.10"   // the remote's service address
	remoteV6  = "2001:db8:2::10" // the same, IPv6
	evilV4    = "203.0.113.66"   // where evil.test points; also served
	dnsV4     = "198.51.100.53"  // the DNS server
	remoteVia = "192.0.2.2"      // the remote's end of the veth
	remote6Vi = "2001:db8:1::2"  // the same, IPv6
)

// zone is what the test DNS server answers; any other name is NXDOMAIN.
var zone = map[string][]string{
	"remote.test":  {remoteV4, remoteV6},
	"remote4.test": {remoteV4},
	"remote6.test": {remoteV6},
	"evil.test":    {evilV4},
	"evil2.test":   {evilV4},
	"denied.test":  {evilV4},
	"loopy.test":   {"127.0.0.1", "::1"},
	"hostlan.test": {hostV4},
}

// world is the fake internet: two network namespaces joined by a veth pair,
// servers in both, a resolver configuration for the host namespace, a unix
// socket of the host and a test CA.
type world struct {
	id       string // sgtest-PID
	hostNS   string // name of the "host" network namespace, where sandgate runs
	remoteNS string // name of the "remote" network namespace
	dir      string // 0755 directory for shared files (CA, unix socket)
	caFile   string // PEM of the CA that signed the remote's TLS certificate

	// Services of the host that the sandbox must not reach.
	hostLoop4, hostLoop6 string // listeners on the host's loopback (ip:port)
	hostLAN4, hostLAN6   string // listeners on the host's veth addresses
	hostSock             string // a unix socket path

	dns     *dnsServer
	closers []func()
}

// ip runs the ip command and reports its output on failure.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newWorld builds the fake internet; dir is a 0755 directory to put shared
// files in. On error everything made so far is removed again.
func newWorld(dir string) (w *world, err error) {
	id := fmt.Sprintf("%s%d", prefix, os.Getpid())
	w = &world{id: id, hostNS: id + "-host", remoteNS: id + "-remote", dir: dir}
	defer func() {
		if err != nil {
			w.close()
			w = nil
		}
	}()
	for _, ns := range []string{w.hostNS, w.remoteNS} {
		if err := ip("netns", "add", ns); err != nil {
			return nil, err
		}
		w.closers = append(w.closers, func() { _ = ip("netns", "delete", ns) })
	}
	etc := filepath.Join("/etc/netns", w.hostNS)
	w.closers = append(w.closers, func() { _ = os.RemoveAll(etc) })
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return nil, err
	}
	// ip netns exec bind-mounts these over /etc/resolv.conf and /etc/hosts.
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+dnsV4+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n"), 0o644); err != nil {
		return nil, err
	}

	hostNS, err := netns.GetFromName(w.hostNS)
	if err != nil {
		return nil, err
	}
	defer hostNS.Close()
	remoteNS, err := netns.GetFromName(w.remoteNS)
	if err != nil {
		return nil, err
	}
	defer remoteNS.Close()
	// No duplicate address detection anywhere: addresses are usable at once.
	for _, h := range []netns.NsHandle{hostNS, remoteNS} {
		if err := inNS(h, func() error {
			for _, f := range []string{"all", "default"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/accept_dad", []byte("0"), 0o644); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}

	hv := fmt.Sprintf("sgt%dh", os.Getpid())
	rv := fmt.Sprintf("sgt%dr", os.Getpid())
	h, r := w.hostNS, w.remoteNS
	steps := [][]string{
		{"-n", h, "link", "set", "lo", "up"},
		{"-n", r, "link", "set", "lo", "up"},
		{"-n", h, "link", "add", hv, "type", "veth", "peer", "name", rv, "netns", r},
		{"-n", h, "addr", "add", hostV4 + "/24", "dev", hv},
		{"-n", h, "addr", "add", hostV6 + "/64", "dev", hv, "nodad"},
		{"-n", h, "link", "set", hv, "up"},
		{"-n", r, "addr", "add", remoteVia + "/24", "dev", rv},
		{"-n", r, "addr", "add", remote6Vi + "/64", "dev", rv, "nodad"},
		{"-n", r, "link", "set", rv, "up"},
		{"-n", r, "addr", "add", remoteV4 + "/32", "dev", "lo"},
		{"-n", r, "addr", "add", evilV4 + "/32", "dev", "lo"},
		{"-n", r, "addr", "add", dnsV4 + "/32", "dev", "lo"},
		{"-n", r, "addr", "add", remoteV6 + "/128", "dev", "lo", "nodad"},
		{"-n", h, "route", "add", "203.0.113.0/24", "via", remoteVia},
		{"-n", h, "route", "add", "198.51.100.0/24", "via", remoteVia},
		{"-n", h, "route", "add", "2001:db8:2::/64", "via", remote6Vi},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return nil, err
		}
	}

	if w.caFile, err = w.startRemote(remoteNS); err != nil {
		return nil, err
	}
	if err := w.startHost(hostNS); err != nil {
		return nil, err
	}
	// A new veth drops what it is given until the kernel has noticed its
	// carrier (up to a second later): wait for that, then check that the
	// remote answers on both families.
	if err := waitLinkUp(h, hv); err != nil {
		return nil, err
	}
	if err := waitLinkUp(r, rv); err != nil {
		return nil, err
	}
	for _, a := range []string{net.JoinHostPort(remoteV4, "80"), net.JoinHostPort(remoteV6, "80")} {
		if err := inNS(hostNS, func() error {
			c, err := net.DialTimeout("tcp", a, 5*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}); err != nil {
			return nil, fmt.Errorf("the fake internet does not work: %w", err)
		}
	}
	return w, nil
}

// waitLinkUp waits (at most 5 s) until dev in namespace ns is operationally up.
func waitLinkUp(ns, dev string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "dev", dev).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip link show %s: %v: %s", dev, err, out)
		}
		if strings.Contains(string(out), "state UP") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never came up: %s", dev, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// close stops the servers and removes the namespaces and files, in reverse
// order of creation.
func (w *world) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
}

// inNS runs fn on an OS thread switched into the network namespace h.
// Sockets created by fn stay in that namespace when the thread switches back.
func inNS(h netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it ends with this goroutine.
			done <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// listen opens listeners in namespace h and registers their closing.
func (w *world) listen(h netns.NsHandle, network string, addrs ...string) ([]net.Listener, error) {
	var ls []net.Listener
	err := inNS(h, func() error {
		for _, a := range addrs {
			l, err := net.Listen(network, a)
			if err != nil {
				return err
			}
			w.closers = append(w.closers, func() { l.Close() })
			ls = append(ls, l)
		}
		return nil
	})
	return ls, err
}

// listenPacket is listen for UDP.
func (w *world) listenPacket(h netns.NsHandle, addrs ...string) ([]net.PacketConn, error) {
	var ps []net.PacketConn
	err := inNS(h, func() error {
		for _, a := range addrs {
			p, err := net.ListenPacket("udp", a)
			if err != nil {
				return err
			}
			w.closers = append(w.closers, func() { p.Close() })
			ps = append(ps, p)
		}
		return nil
	})
	return ps, err
}

// startHost starts the host's own services the sandbox must not reach: a
// banner on its loopback and LAN addresses, and a unix socket.
func (w *world) startHost(h netns.NsHandle) error {
	ls, err := w.listen(h, "tcp", "127.0.0.1:0", "[::1]:0", net.JoinHostPort(hostV4, "0"), net.JoinHostPort(hostV6, "0"))
	if err != nil {
		return err
	}
	w.hostLoop4, w.hostLoop6 = ls[0].Addr().String(), ls[1].Addr().String()
	w.hostLAN4, w.hostLAN6 = ls[2].Addr().String(), ls[3].Addr().String()
	for _, l := range ls {
		go serveBanner(l, "HOST-SERVICE "+l.Addr().String(), false)
	}
	w.hostSock = filepath.Join(w.dir, "host.sock")
	ul, err := net.Listen("unix", w.hostSock)
	if err != nil {
		return err
	}
	w.closers = append(w.closers, func() { ul.Close() })
	// Reachable by anyone who may create a unix socket, like the test user.
	if err := os.Chmod(w.hostSock, 0o777); err != nil {
		return err
	}
	go serveBanner(ul, "HOST-UNIX", false)
	return nil
}

// startRemote starts the remote's services: HTTP on :80, HTTPS on :443,
// a banner and echo on :22, UDP echo on :9 (v4 and v6 service addresses,
// HTTP also on evil.test's address) and DNS on dnsV4:53, UDP and TCP. It
// returns the path of the CA certificate.
func (w *world) startRemote(h netns.NsHandle) (string, error) {
	v4 := func(port string) string { return net.JoinHostPort(remoteV4, port) }
	v6 := func(port string) string { return net.JoinHostPort(remoteV6, port) }

	web, err := w.listen(h, "tcp", v4("80"), v6("80"), net.JoinHostPort(evilV4, "80"))
	if err != nil {
		return "", err
	}
	for _, l := range web {
		srv := newHTTPServer("http", nil)
		go srv.Serve(l)
		w.closers = append(w.closers, func() { srv.Close() })
	}

	ca, err := newTestCA([]string{"remote.test", "remote4.test", "remote6.test"}, []string{remoteV4, remoteV6})
	if err != nil {
		return "", err
	}
	caFile := filepath.Join(w.dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.caPEM, 0o644); err != nil {
		return "", err
	}
	tlsLs, err := w.listen(h, "tcp", v4("443"), v6("443"))
	if err != nil {
		return "", err
	}
	for _, l := range tlsLs {
		srv := newHTTPServer("https", ca.serverConfig)
		go srv.ServeTLS(l, "", "")
		w.closers = append(w.closers, func() { srv.Close() })
	}

	banners, err := w.listen(h, "tcp", v4("22"), v6("22"))
	if err != nil {
		return "", err
	}
	for _, l := range banners {
		go serveBanner(l, "SSH-2.0-sgtest-banner", true)
	}

	echoes, err := w.listenPacket(h, v4("9"), v6("9"))
	if err != nil {
		return "", err
	}
	for _, p := range echoes {
		go serveUDPEcho(p)
	}

	w.dns = &dnsServer{zone: zone}
	dnsUDP, err := w.listenPacket(h, net.JoinHostPort(dnsV4, "53"))
	if err != nil {
		return "", err
	}
	dnsTCP, err := w.listen(h, "tcp", net.JoinHostPort(dnsV4, "53"))
	if err != nil {
		return "", err
	}
	go w.dns.serveUDP(dnsUDP[0])
	go w.dns.serveTCP(dnsTCP[0])
	return caFile, nil
}

//go:build linux

package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sandgate/sandgate/internal/testnet"
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

// hostsOnlyName is a name only the host namespace's hosts file knows (at
// remoteV4); the DNS server does not.
const hostsOnlyName = "hostsfile.test"

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

	remote    *testnet.NS // the remote namespace, for tests' own servers
	serverTLS *tls.Config // the remote's TLS configuration (certificate signed by caFile's CA)

	dns     *dnsServer
	closers []func()
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
	host, err := w.namespace(w.hostNS)
	if err != nil {
		return nil, err
	}
	remote, err := w.namespace(w.remoteNS)
	if err != nil {
		return nil, err
	}
	w.remote = remote
	etc := filepath.Join("/etc/netns", w.hostNS)
	w.closers = append(w.closers, func() { _ = os.RemoveAll(etc) })
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return nil, err
	}
	// ip netns exec bind-mounts these over /etc/resolv.conf and /etc/hosts.
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+dnsV4+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n"+remoteV4+" "+hostsOnlyName+"\n"), 0o644); err != nil {
		return nil, err
	}
	// No duplicate address detection anywhere: addresses are usable at once.
	for _, ns := range []*testnet.NS{host, remote} {
		for _, f := range []string{"all", "default"} {
			if err := ns.Sysctl("net/ipv6/conf/"+f+"/accept_dad", "0"); err != nil {
				return nil, err
			}
		}
	}

	// The veth pair (testnet waits for its carrier: a new veth drops what
	// it is given until the kernel has noticed it), then the remote's
	// service addresses and the host's routes to them.
	hv := fmt.Sprintf("sgt%dh", os.Getpid())
	rv := fmt.Sprintf("sgt%dr", os.Getpid())
	if err := testnet.Veth(host, hv, []string{hostV4 + "/24", hostV6 + "/64"}, remote, rv, []string{remoteVia + "/24", remote6Vi + "/64"}); err != nil {
		return nil, err
	}
	steps := []struct {
		ns   *testnet.NS
		args []string
	}{
		{remote, []string{"addr", "add", remoteV4 + "/32", "dev", "lo"}},
		{remote, []string{"addr", "add", evilV4 + "/32", "dev", "lo"}},
		{remote, []string{"addr", "add", dnsV4 + "/32", "dev", "lo"}},
		{remote, []string{"addr", "add", remoteV6 + "/128", "dev", "lo", "nodad"}},
		{host, []string{"route", "add", "203.0.113.0/24", "via", remoteVia}},
		{host, []string{"route", "add", "198.51.100.0/24", "via", remoteVia}},
		{host, []string{"route", "add", "2001:db8:2::/64", "via", remote6Vi}},
	}
	for _, s := range steps {
		if _, err := s.ns.IP(s.args...); err != nil {
			return nil, err
		}
	}

	if w.caFile, err = w.startRemote(remote); err != nil {
		return nil, err
	}
	if err := w.startHost(host); err != nil {
		return nil, err
	}
	// Check that the remote answers on both families.
	for _, a := range []string{net.JoinHostPort(remoteV4, "80"), net.JoinHostPort(remoteV6, "80")} {
		if err := host.Do(func() error {
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

// namespace creates the named network namespace name and registers its
// removal.
func (w *world) namespace(name string) (*testnet.NS, error) {
	ns, err := testnet.Create(name)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { _ = ns.Close() })
	return ns, nil
}

// close stops the servers and removes the namespaces and files, in reverse
// order of creation.
func (w *world) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
}

// listen opens listeners in namespace h and registers their closing.
func (w *world) listen(h *testnet.NS, network string, addrs ...string) ([]net.Listener, error) {
	var ls []net.Listener
	err := h.Do(func() error {
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
func (w *world) listenPacket(h *testnet.NS, addrs ...string) ([]net.PacketConn, error) {
	var ps []net.PacketConn
	err := h.Do(func() error {
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
func (w *world) startHost(h *testnet.NS) error {
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
func (w *world) startRemote(h *testnet.NS) (string, error) {
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
	w.serverTLS = ca.serverConfig
	caFile := filepath.Join(w.dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.caPEM, 0o644); err != nil {
		return "", err
	}
	tlsLs, err := w.listen(h, "tcp", v4("443"), v6("443"))
	if err != nil {
		return "", err
	}
	for _, l := range tlsLs {
		srv := newHTTPServer("https", ca.serverConfig.Clone()) // each its own: ServeTLS adds to its NextProtos
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

//go:build linux

package sandbox

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/setup"
)

// servers starts, in the test's namespace, an HTTP server and a line
// server on loopback and a UDP echo server; it returns their addresses.
func servers(t *testing.T) (httpAddr, lineAddr, udpAddr string) {
	t.Helper()
	httpAddr = serveUntilEnd(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil || strings.TrimSpace(l) == "" {
				break
			}
		}
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: close\r\n\r\nhello from host\n")
	})
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			uc.WriteTo(buf[:n], from)
		}
	}()
	return httpAddr, hostListener(t, "line-greeting"), uc.LocalAddr().String()
}

func (w *idWorld) testProxy(t *testing.T) {
	httpAddr, lineAddr, udpAddr := servers(t)
	spec := w.spec("id-net", "http-auth="+httpAddr, "http-noauth="+httpAddr, "http-auth="+lineAddr,
		"socks-auth="+lineAddr, "socks-noauth="+lineAddr, "direct="+httpAddr, "direct="+lineAddr, "udp="+udpAddr)
	spec.Network, spec.Gate = NetworkProxy, allowGate(t, httpAddr, lineAddr)
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 || o.res.ProxyErr != nil {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout,
		"http-auth "+httpAddr+" 200 hello from host\n", // through the proxy, allowed
		"http-noauth "+httpAddr+" 407\n",               // the proxy wants the run's credentials
		"socks-auth "+lineAddr+" ok line-greeting\n",
		"socks-noauth "+lineAddr+" method ff\n", // no acceptable method without credentials
		"direct "+httpAddr+" ECONNREFUSED\n",    // loopback TCP besides the proxy ports: rejected
		"direct "+lineAddr+" ECONNREFUSED\n")
	if strings.Contains(o.stdout, "udp "+udpAddr+" reply") || !strings.Contains(o.stdout, "udp "+udpAddr+" ") {
		t.Errorf("loopback UDP got through:\n%s", o.stdout)
	}

	// Another program listening on reserved ports (an unmarked socket, as
	// another local user or a --network full run would have) cannot serve
	// the offline user: neither on a port no run holds nor on ::1 at a port
	// a run may hold on 127.0.0.1. Without the input rule both would answer.
	last := int(setup.DefaultPorts()[setup.DefaultPortCount-1])
	relays := []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(last)), net.JoinHostPort("::1", strconv.Itoa(setup.DefaultPortBase))}
	for _, addr := range relays {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	relay := w.spec("id-net", "direct="+relays[0], "direct="+relays[1], "http-auth="+httpAddr)
	relay.Network, relay.Gate = NetworkProxy, spec.Gate
	o = sandboxRun(t, relay)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout, "direct "+relays[0]+" ECONNREFUSED\n", "direct "+relays[1]+" ECONNREFUSED\n",
		"http-auth "+httpAddr+" 200 hello from host\n")

	// The proxy's listeners carry the mark the input rule asks for.
	lease, err := w.leaser.Acquire(setup.Need{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release()
	lns, err := lease.ReservePorts()
	if err != nil {
		t.Fatal(err)
	}
	defer closeListeners(lns)
	for _, ln := range lns {
		rc, err := ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var mark int
		var merr error
		rc.Control(func(fd uintptr) { mark, merr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
		if merr != nil || mark != ruleplan.ProxySocketMark {
			t.Errorf("proxy listener %s has SO_MARK %#x (%v), want %#x", ln.Addr(), mark, merr, ruleplan.ProxySocketMark)
		}
	}

	// The environment: credentials in the URLs, NO_PROXY empty, the
	// sandbox user's home.
	env := w.spec("id-status", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "no_proxy", "SANDGATE_SOCKS_USER", "HOME", "USER")
	env.Network, env.Gate = NetworkProxy, spec.Gate
	env.Env = append(env.Env, "HTTP_PROXY=http://corp.example:3128", "NO_PROXY=corp.example")
	o = sandboxRun(t, env)
	if o.err != nil {
		t.Fatal(o.err)
	}
	mustContain(t, o.stdout, `env NO_PROXY="" true`, `env no_proxy="" true`, `env SANDGATE_SOCKS_USER="sandgate" true`,
		fmt.Sprintf(`env HOME=%q true`, filepath.Join(w.opts.StateDir, "home", w.names[0])), fmt.Sprintf(`env USER=%q true`, w.names[0]))
	re := `env HTTP_PROXY="http://sandgate:[0-9a-f]{32}@127\.0\.0\.1:471(0\d|1[0-5])" true`
	if !regexpMatch(re, o.stdout) || !regexpMatch(`env ALL_PROXY="socks5h://sandgate:[0-9a-f]{32}@127\.0\.0\.1:471\d\d" true`, o.stdout) {
		t.Errorf("proxy URLs:\n%s", o.stdout)
	}
}

func (w *idWorld) testUnixSockets(t *testing.T) {
	name := "sgtest-host-" + randHex(4)
	unixListener(t, "@"+name)
	// The seccomp rule: no unix sockets at all.
	o := sandboxRun(t, w.spec("id-net", "unix-socket", "abstract="+name))
	mustContain(t, o.stdout, "unix-socket EPERM\n", "abstract "+name+" EPERM\n")
	// Without it, Landlock still shuts the host's abstract sockets, and
	// only them.
	spec := w.spec("id-net", "unix-socket", "abstract="+name, "own-abstract")
	spec.AllowUnixSockets = true
	o = sandboxRun(t, spec)
	mustContain(t, o.stdout, "unix-socket ok\n", "abstract "+name+" EPERM\n", "own-abstract ok\n")
	// The same connection from outside the sandbox works.
	if c, err := net.Dial("unix", "@"+name); err != nil {
		t.Errorf("the host's abstract socket is not reachable from the host: %v", err)
	} else {
		c.Close()
	}
}

func (w *idWorld) testNetworkNone(t *testing.T) {
	_, lineAddr, _ := servers(t)
	spec := w.spec("id-net", "direct="+lineAddr)
	o := sandboxRun(t, spec)
	mustContain(t, o.stdout, "direct "+lineAddr+" ECONNREFUSED\n")
	env := w.spec("id-status", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
	env.Env = append(env.Env, "HTTP_PROXY=http://corp.example:3128")
	o = sandboxRun(t, env)
	mustContain(t, o.stdout, `env HTTP_PROXY="" false`, `env ALL_PROXY="" false`, `env NO_PROXY="" false`,
		"Uid:\t"+strconv.Itoa(w.offUID)+"\t")
}

func (w *idWorld) testNetworkFull(t *testing.T) {
	_, lineAddr, _ := servers(t)
	spec := w.spec("id-net", "direct="+lineAddr)
	spec.Network = NetworkFull
	o := sandboxRun(t, spec)
	mustContain(t, o.stdout, "direct "+lineAddr+" ok\n")
	env := w.spec("id-status", "HTTP_PROXY")
	env.Network = NetworkFull
	env.Env = append(env.Env, "HTTP_PROXY=http://corp.example:3128")
	o = sandboxRun(t, env)
	mustContain(t, o.stdout, `env HTTP_PROXY="http://corp.example:3128" true`)
	id := func(n int) string { return fmt.Sprintf("%d\t%d\t%d\t%d", n, n, n, n) }
	if statusLine(o.stdout, "Uid") != id(w.onUID) || statusLine(o.stdout, "Gid") != id(w.gid) || statusLine(o.stdout, "Groups") != "" {
		t.Errorf("not the online user with the sandbox group only:\n%s", o.stdout)
	}
}

//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/netroute"
	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/policy"
)

// transparentHelper (id-tdial) is a client that knows nothing of the
// proxy: for each argument "tcp=HOST:PORT" it dials (resolving HOST with
// Go's resolver, which reads the sandbox's resolv.conf) and prints the
// first line it reads; "udp=IP:PORT" sends a datagram; "udpdns=NAME"
// resolves NAME over UDP only; "resolv" prints /etc/resolv.conf.
func transparentHelper(args []string) int {
	for _, a := range args {
		kind, addr, _ := strings.Cut(a, "=")
		switch kind {
		case "tcp":
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				fmt.Printf("tcp %s %s\n", addr, errName(err))
				continue
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				fmt.Printf("tcp %s read %s\n", addr, errName(err))
				continue
			}
			fmt.Printf("tcp %s ok %s", addr, line)
		case "udp":
			c, err := net.Dial("udp", addr)
			if err == nil {
				_, err = c.Write([]byte("x"))
				if err == nil {
					time.Sleep(100 * time.Millisecond)
					_, err = c.Write([]byte("y")) // the ICMP error of the first shows here
				}
				c.Close()
			}
			fmt.Printf("udp %s %s\n", addr, errName(err))
		case "udpdns":
			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, address string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "udp", address) // a PacketConn: the resolver speaks UDP DNS
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			addrs, err := r.LookupHost(ctx, addr)
			cancel()
			fmt.Printf("udpdns %s %v %s\n", addr, addrs, errName(err))
		case "resolv":
			b, err := os.ReadFile("/etc/resolv.conf")
			fmt.Printf("resolv %q %v\n", b, err)
		}
	}
	return 0
}

// transparentGate allows remote.test:80 and 192.0.2.1:80, resolves every
// name to 192.0.2.10 and dials every address at the line server.
func transparentGate(t *testing.T, line string) *egress.Gate {
	t.Helper()
	pol, err := policy.New(policy.Config{Allow: []string{"remote.test:80", "192.0.2.1:80"}})
	if err != nil {
		t.Fatal(err)
	}
	return &egress.Gate{
		Policy:     pol,
		Resolver:   fixedResolver{netip.MustParseAddr("192.0.2.10")},
		LocalAddrs: func() []netip.Addr { return nil },
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, line)
		},
	}
}

// fixedResolver answers every name with its address.
type fixedResolver struct{ a netip.Addr }

func (r fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{r.a}, nil
}

// testTransparent: with Spec.Transparent, an identity run's client that
// ignores the proxy reaches an allowed name through the run's DNS stub
// and transparent listener, and an allowed IP literal; a refused name
// does not resolve; a refused literal and UDP are refused; all of it is
// audited; and the run's rules are gone at the end, with those a killed
// run left.
func (w *idWorld) testTransparent(t *testing.T) {
	// The test's namespace has only lo: give it a default route, as hosts
	// have, so that connect() reaches the rules.
	if err := netroute.DefaultViaLoopback(""); err != nil {
		t.Fatal(err)
	}
	line := hostListener(t, "line-greeting")
	// Rules a killed run left (its port is free): reported, then pruned
	// by the next transparent run.
	free, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := free.Addr().(*net.TCPAddr).Port
	free.Close()
	dead := fmt.Sprintf("p%d-dead", port)
	if err := nftfw.AddRun("", nftfw.IdentityRun{ID: dead, UID: uint32(w.offUID), CgroupID: 1 << 40, CgroupLevel: 2, TCPPort: uint16(port)}); err != nil {
		t.Fatal(err)
	}
	if stale, err := StaleTransparentRules(""); err != nil || len(stale) != 1 || stale[0] != dead {
		t.Errorf("StaleTransparentRules = %v, %v; want [%s]", stale, err, dead)
	}
	sink := &events{}
	spec := w.spec("id-tdial", "resolv", "tcp=remote.test:80", "tcp=192.0.2.1:80", "tcp=evil.test:80", "tcp=192.0.2.66:80", "udp=192.0.2.1:443",
		"udpdns=remote.test", "udpdns=evil.test")
	spec.Network, spec.Gate, spec.Transparent, spec.Audit = NetworkProxy, transparentGate(t, line), true, sink
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	// DNS over UDP is answered (setup's rule lets the redirected query
	// reach the stub), so the resolver needs no "use-vc".
	if strings.Contains(o.stdout, "use-vc") || !strings.Contains(o.stdout, `\nnameserver 127.0.0.1\n`) {
		t.Errorf("the run's resolv.conf is not the stub's alone:\n%s", o.stdout)
	}
	if !regexpMatch(`udpdns remote\.test \[198\.1[89]\.[0-9.]+( [0-9a-f:]+)?\] ok\n`, o.stdout) {
		t.Errorf("remote.test over UDP DNS did not resolve to a synthetic address:\n%s", o.stdout)
	}
	if !regexpMatch(`udpdns evil\.test \[\] error:lookup evil\.test[^\n]*: no such host\n`, o.stdout) {
		t.Errorf("evil.test over UDP DNS was not NXDOMAIN:\n%s", o.stdout)
	}
	mustContain(t, o.stdout, "tcp remote.test:80 ok line-greeting\n", "tcp 192.0.2.1:80 ok line-greeting\n",
		"tcp evil.test:80 error:", "tcp 192.0.2.66:80 read ECONNRESET\n", "udp 192.0.2.1:443 EPERM\n")
	want := map[string]bool{"transparent remote.test allow": false, "transparent 192.0.2.1 allow": false,
		"dns evil.test deny": false, "transparent 192.0.2.66 deny": false, "packet udp deny": false}
	sink.mu.Lock()
	for _, e := range sink.got {
		k := e.Proto + " " + e.Host + " " + e.Decision
		if _, ok := want[k]; ok {
			want[k] = true
		}
	}
	sink.mu.Unlock()
	for k, seen := range want {
		if !seen {
			t.Errorf("no audit event %q in %+v", k, sink.got)
		}
	}
	// Nothing of the run is left, nor of the dead one: no rules.
	var left []string
	if err := nftfw.PruneRuns("", func(id string) bool { left = append(left, id); return true }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("transparent rules left after the run: %v", left)
	}
}

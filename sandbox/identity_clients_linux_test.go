//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// clientsScript runs, in an identity sandbox, real clients that know
// nothing of the proxy (every proxy variable removed); each prints its
// marker when it got what it should. Plain ssh cannot run here: the
// world's users exist only in the test's copies of the account files, and
// ssh refuses a uid without a passwd entry before it connects; nc reads
// the ssh server's banner on :22 instead (e2e's TestRunTransparent runs
// plain ssh, on the netns backend).
const clientsScript = `
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy NO_PROXY no_proxy GIT_SSH_COMMAND
curl -sS --max-time 5 --noproxy '*' http://remote.test/ | grep -q REMOTE-HTTP && echo T-CURL-OK
curl -sS --max-time 5 --noproxy '*' http://hostsonly.test/ | grep -q REMOTE-HTTP && echo T-CURL-HOSTS-OK
node -e 'fetch("http://remote.test/").then(r => r.text()).then(t => { if (t.includes("REMOTE-HTTP")) console.log("T-NODE-OK") }, e => { console.log("T-NODE-FAILED", String(e.cause || e)); process.exit(1) })'
nc -w 3 db.test 5432 </dev/null | grep -q '^DB-LINE' && echo T-NC-OK
echo SSH-2.0-client | nc -w 3 remote.test 22 | head -1 | grep -q '^SSH-2.0-sgtest-banner' && echo T-SSH-BANNER-OK
getent hosts denied.test || echo T-DENIED-NXDOMAIN
curl -sS --max-time 5 --noproxy '*' http://192.0.2.66/ || echo T-LITERAL-REFUSED
echo x 2>/dev/null >/dev/udp/192.0.2.1/9 || echo T-UDP-REFUSED
exit 0
`

// loggingResolver answers every name with one address and remembers the
// names it was asked: the test's stand-in for the remote resolver.
type loggingResolver struct {
	a     netip.Addr
	mu    sync.Mutex
	asked []string
}

func (r *loggingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	return []netip.Addr{r.a}, nil
}

func (r *loggingResolver) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.asked)
}

// clientsWorld starts the fake remote services (HTTP on :80, an ssh
// banner on :22, a line server on :5432) on the loopback of the test's
// namespace and returns a gate allowing remote.test:80 and :22,
// db.test:5432 and hostsonly.test:80 that resolves every name to
// 192.0.2.10 and dials the service of the port asked for.
func clientsWorld(t *testing.T) (*egress.Gate, *loggingResolver) {
	t.Helper()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "REMOTE-HTTP\n")
	}))
	t.Cleanup(web.Close)
	sshd := serveUntilEnd(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, "SSH-2.0-sgtest-banner\r\n")
		io.Copy(io.Discard, io.LimitReader(c, 1<<16)) // until the client gives up
	})
	db := hostListener(t, "DB-LINE")
	services := map[string]string{"80": web.Listener.Addr().String(), "22": sshd, "5432": db}
	pol, err := policy.New(policy.Config{Allow: []string{"remote.test:80", "remote.test:22", "db.test:5432", "hostsonly.test:80"}})
	if err != nil {
		t.Fatal(err)
	}
	res := &loggingResolver{a: netip.MustParseAddr("192.0.2.10")}
	return &egress.Gate{
		Policy:     pol,
		Resolver:   res,
		LocalAddrs: func() []netip.Addr { return nil },
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			to, ok := services[port]
			if !ok {
				return nil, fmt.Errorf("the test world serves no port %s", port)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, to)
		},
	}, res
}

// testTransparentClients: in an identity run with the transparent path
// and every proxy variable removed, curl (by a name only DNS knows and by
// a hosts-file name), Node's fetch, and nc (to :5432 and to an ssh
// server's :22) reach the allowed
// fake services; a denied name is NXDOMAIN and the resolver never hears
// of it; a denied literal and UDP are refused; all of it is audited.
// (After testTransparent, which gives the namespace its default route.)
func (w *idWorld) testTransparentClients(t *testing.T) {
	for _, tool := range []string{"curl", "nc", "node", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-test-deps.sh installs it): %v", tool, err)
		}
	}
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n192.0.2.20 hostsonly.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := hostsSource
	hostsSource = hosts
	defer func() { hostsSource = old }()
	gate, res := clientsWorld(t)
	sink := &events{}
	spec := w.spec("")
	spec.Args = []string{"/bin/bash", "-c", clientsScript}
	spec.Network, spec.Gate, spec.Transparent, spec.Audit = NetworkProxy, gate, true, sink
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	for _, want := range []string{"T-CURL-OK", "T-CURL-HOSTS-OK", "T-NODE-OK", "T-NC-OK", "T-SSH-BANNER-OK",
		"T-DENIED-NXDOMAIN", "T-LITERAL-REFUSED", "T-UDP-REFUSED"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	asked := res.names()
	if slices.ContainsFunc(asked, func(n string) bool { return strings.HasPrefix(n, "denied.test") }) {
		t.Errorf("the resolver was asked about the denied name: %v", asked)
	}
	for _, name := range []string{"remote.test.", "db.test."} { // hostsonly.test is dialled at its hosts-file address
		if !slices.Contains(asked, name) {
			t.Errorf("the resolver was never asked about %s, which was dialled: %v", name, asked)
		}
	}
	want := map[string]bool{"transparent remote.test allow": false, "transparent db.test allow": false, "transparent remote.test:22 allow": false,
		"transparent hostsonly.test allow": false, "dns denied.test deny": false,
		"transparent 192.0.2.66 deny": false, "packet udp deny": false}
	sink.mu.Lock()
	for _, e := range sink.got {
		for _, k := range []string{e.Proto + " " + e.Host + " " + e.Decision, fmt.Sprintf("%s %s:%d %s", e.Proto, e.Host, e.Port, e.Decision)} {
			if _, ok := want[k]; ok {
				want[k] = true
			}
		}
	}
	sink.mu.Unlock()
	for k, seen := range want {
		if !seen {
			t.Errorf("no audit event %q", k)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s\naudit: %+v", o.stdout, o.stderr, sink.got)
	}
}

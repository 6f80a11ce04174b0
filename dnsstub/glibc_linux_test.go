package dnsstub

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/internal/testnet"
)

// TestGlibcResolverInNamespace runs the stub on 127.0.0.1:53 of a test
// network namespace and resolves through glibc (getent, under `ip netns
// exec`, which puts /etc/netns/NAME/resolv.conf and hosts in place of the
// host's), as a sandboxed program would: the generated resolv.conf and
// hosts view must work with the system's own resolver.
func TestGlibcResolverInNamespace(t *testing.T) {
	ns := testnet.New(t)
	if _, err := exec.LookPath("getent"); err != nil {
		t.Fatalf("getent is needed: %v", err)
	}
	s := newStub(t, nil)
	// The pool's own addresses on lo, as a sandbox carries them, so that
	// AI_ADDRCONFIG lets both families through (see synthaddr SelfAddrs).
	self4, self6 := s.pool.SelfAddrs()
	for _, args := range [][]string{
		{"addr", "add", self4.String() + "/32", "dev", "lo"},
		{"addr", "add", self6.String() + "/128", "dev", "lo", "nodad"},
	} {
		if _, err := ns.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	etc := filepath.Join("/etc/netns", ns.Name)
	// /etc/netns itself is left in place: tests of other packages running
	// at the same time make their own directories in it.
	must(t, os.MkdirAll(etc, 0o755))
	t.Cleanup(func() {
		if err := os.RemoveAll(etc); err != nil {
			t.Errorf("removing %s: %v", etc, err)
		}
	})
	asked := func() []string {
		s.pol.mu.Lock()
		defer s.pol.mu.Unlock()
		return slices.Clone(s.pol.asked)
	}
	view, err := HostsView([]byte("127.0.0.1 localhost\n203.0.113.10 db.example\n198.51.100.20 evil.example\n"), s.pol, s.pool)
	must(t, err)
	start := len(asked()) // the questions of HostsView itself
	must(t, os.WriteFile(filepath.Join(etc, "hosts"), view, 0o644))
	must(t, os.WriteFile(filepath.Join(etc, "resolv.conf"), ResolvConf(netip.MustParseAddr("127.0.0.1")), 0o644))

	var pc net.PacketConn
	var l net.Listener
	must(t, ns.Do(func() (err error) {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:53"); err != nil {
			return err
		}
		l, err = net.Listen("tcp", "127.0.0.1:53")
		return err
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- s.ServeUDP(ctx, pc) }()
	go func() { done <- s.ServeTCP(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		for i := 0; i < 2; i++ {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})

	getent := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, "getent"}, args...)...).CombinedOutput()
		return string(out), err
	}
	allowed, err := s.pool.Allocate("allowed.example")
	must(t, err)
	db, err := s.pool.Allocate("db.example")
	must(t, err)
	for _, c := range []struct {
		args []string
		want netip.Addr
	}{
		{[]string{"ahostsv4", "allowed.example"}, allowed.V4},
		{[]string{"ahostsv6", "allowed.example"}, allowed.V6},
	} {
		out, err := getent(c.args...)
		if err != nil || !strings.Contains(out, c.want.String()) {
			t.Errorf("getent %v = %v %q, want %v", c.args, err, out, c.want)
		}
	}
	// A hosts-file name is answered from the hosts view, without a query.
	n := len(asked())
	if out, err := getent("ahostsv4", "db.example"); err != nil || !strings.Contains(out, db.V4.String()) {
		t.Errorf("getent ahostsv4 db.example = %v %q, want %v", err, out, db.V4)
	}
	if q := asked()[n:]; len(q) != 0 {
		t.Errorf("a hosts-file name went to the stub: %v", q)
	}
	before := len(s.rec.all())
	if out, err := getent("ahosts", "evil.example"); err == nil {
		t.Errorf("getent ahosts evil.example succeeded: %q", out)
	}
	refused := s.rec.all()[before:]
	if len(refused) == 0 || refused[0].Name != "evil.example" || refused[0].RCode != "NXDOMAIN" {
		t.Errorf("refusals for evil.example: %+v", refused)
	}
	// Even when the host name has a domain (here in a UTS namespace of its
	// own), a one-label name is asked as it is: "search ." keeps glibc from
	// appending the host name's domain.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	out, err := exec.CommandContext(ctx2, "unshare", "--uts", "sh", "-c",
		`hostname box.corp.example && exec ip netns exec "$0" getent ahosts shortname`, ns.Name).CombinedOutput()
	if err == nil {
		t.Errorf("getent ahosts shortname succeeded: %q", out)
	}
	if !slices.Contains(asked(), "shortname") {
		t.Errorf("the policy never saw shortname: %v (%q)", asked(), out)
	}
	// No suffix is ever added to what the program asked.
	for _, n := range asked()[start:] {
		if n != "allowed.example" && n != "evil.example" && n != "shortname" {
			t.Errorf("the policy was asked about %q: a search domain was appended", n)
		}
	}
	if !slices.Contains(asked(), "evil.example") {
		t.Errorf("the policy never saw evil.example: %v", asked())
	}
}

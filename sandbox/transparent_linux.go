//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/dnsstub"
	"github.com/sandgate/sandgate/internal/starttrace"
	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/proxy"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
	"github.com/sandgate/sandgate/synthaddr"
)

// The transparent path (issue 11) of a netns run: the sandbox's init
// routes every TCP connection CMD makes to a non-local address to a
// transparent listener and every DNS query to a stub (see
// initproto.Transparent); sandgate serves both here, with the run's proxy
// server, so one gate decides and one audit sink records every
// connection, proxied or not. The stub answers allowed names with
// addresses of the run's synthetic range (synthaddr), which the
// transparent listener maps back to the name; a refused name is answered
// NXDOMAIN without any lookup. The sandbox's /etc/hosts and
// /etc/resolv.conf are views sandgate writes for the run: hosts-file names
// the policy allows map to synthetic addresses too (and are dialled at
// their hosts-file addresses), and the only nameserver is the stub.

// hostsPath and resolvPath are the files the sandbox sees replaced.
const (
	hostsPath  = "/etc/hosts"
	resolvPath = "/etc/resolv.conf"
)

// hostsSource is the hosts file the sandbox's hosts view is made from: the
// host's own (tests give one of theirs).
var hostsSource = hostsPath

// Audit Event.Proto values of the transparent path besides
// proxy.ProtoTransparent.
const (
	// ProtoDNS: a DNS query the stub refused (Host is the name, Port 0).
	ProtoDNS = "dns"
	// ProtoPacket: packets the sandbox's rules refused (UDP, QUIC
	// included, and other protocols), counted for the whole run.
	ProtoPacket = audit.ProtoPacket
)

// Reasons of ProtoPacket events.
const (
	ReasonUDPRefused   = "udp-refused"
	ReasonOtherRefused = "protocol-refused"
	ReasonTCPDropped   = "tcp-unredirected"
)

// transparentRun is the sandgate side of one run's transparent path.
type transparentRun struct {
	spec  Spec
	pool  *synthaddr.Pool
	dir   string // the run's hosts and resolv.conf views
	ctx   context.Context
	stopc context.CancelFunc
	wg    sync.WaitGroup

	// refusals reads what the rules refused, once, at the end (nil: no
	// counters to read); undo releases what the backend made for the
	// path, after that.
	refusals func() (nftfw.Refusals, error)
	undo     []func()
	stopped  bool
}

// newTransparentRun makes the run's synthetic range and its views of
// /etc/hosts and /etc/resolv.conf, and returns the init's part of it.
func newTransparentRun(spec Spec) (*transparentRun, *initproto.Transparent, []initproto.ReplaceFile, error) {
	pool, err := synthaddr.NewRun()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("transparent path: %w", err)
	}
	t, replace, err := newTransparentViews(spec, pool)
	if err != nil {
		return nil, nil, nil, err
	}
	v4, v6 := pool.SelfAddrs()
	it := &initproto.Transparent{SelfAddrs: []string{v4.String()}}
	if v6.IsValid() {
		it.SelfAddrs = append(it.SelfAddrs, v6.String())
	}
	return t, it, replace, nil
}

// newTransparentViews makes a run's transparent path around pool, with its
// views of /etc/hosts and /etc/resolv.conf.
func newTransparentViews(spec Spec, pool *synthaddr.Pool) (*transparentRun, []initproto.ReplaceFile, error) {
	var err error
	t := &transparentRun{spec: spec, pool: pool}
	t.ctx, t.stopc = context.WithCancel(context.Background())
	hosts, err := os.ReadFile(hostsSource)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("transparent path: reading the host's %s: %w", hostsSource, err)
	}
	view, err := dnsstub.HostsView(hosts, t.policy(), pool)
	if err != nil {
		return nil, nil, fmt.Errorf("transparent path: %w", err)
	}
	view = withOwnHostname(view)
	if t.dir, err = os.MkdirTemp(viewsParent(), "sandgate-run-"); err != nil {
		return nil, nil, fmt.Errorf("transparent path: %w", err)
	}
	var replace []initproto.ReplaceFile
	for _, f := range []struct {
		name, target string
		data         []byte
	}{
		{"hosts", hostsPath, view},
		{"resolv.conf", resolvPath, dnsstub.ResolvConf(netip.MustParseAddr("127.0.0.1"))},
	} {
		src := filepath.Join(t.dir, f.name)
		if err := os.WriteFile(src, f.data, 0o444); err != nil {
			t.stop()
			return nil, nil, fmt.Errorf("transparent path: %w", err)
		}
		replace = append(replace, initproto.ReplaceFile{Source: src, Target: f.target, Transparent: true})
	}
	return t, replace, nil
}

// viewsParent is where a run's hosts and resolv.conf views are made: the
// caller's TMPDIR when set, else /dev/shm when it is a tmpfs sandgate may
// write (making and removing the two files there costs a fifth of what it
// does on an ext4 /tmp, and both are on the start-up's way), else the
// system's temporary directory. It is as private as /tmp: the run's own
// directory is 0700 with a random name, and the view hides both from CMD.
func viewsParent() string {
	if os.Getenv("TMPDIR") != "" {
		return ""
	}
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK|unix.X_OK) == nil {
		return "/dev/shm"
	}
	return ""
}

// policy is the stub's question: is the name allowed on some port. With an
// Asker (--ask, --decider) a name merely not on the allow list gets an
// address too, so that the connection to it reaches the gate and is asked
// about with its port.
func (t *transparentRun) policy() dnsstub.Policy {
	return dnsstub.PolicyFunc(func(name string) (bool, string) {
		g := t.spec.Gate
		p := g.PolicyNow() // a live policy's change reaches the stub at once
		if p == nil {
			return false, policy.ReasonNotAllowed
		}
		d := p.CheckName(name)
		if !d.Allow && d.Reason == policy.ReasonNotAllowed && g.Ask != nil {
			return true, ""
		}
		return d.Allow, d.Reason
	})
}

// serve serves the sandbox's transparent sockets (see
// initproto.TransparentFiles) with srv.
func (t *transparentRun) serve(srv *proxy.Server, files []*os.File) error {
	if len(files) != initproto.TransparentFiles {
		closeFiles(files)
		return fmt.Errorf("the init passed %d transparent sockets, want %d", len(files), initproto.TransparentFiles)
	}
	counters := files[initproto.FileCounters]
	t.refusals = func() (nftfw.Refusals, error) {
		// Closed without waiting for the kernel's cleanup of the
		// sandbox's nftables transaction (see nftfw.CloseCounterSocket).
		defer nftfw.CloseCounterSocket(counters)
		return nftfw.ReadSandboxRefusals(counters)
	}
	var lns []net.Listener
	var pcs []net.PacketConn
	var first error
	for i, f := range files[:initproto.FileCounters] {
		switch i {
		case initproto.FileDNSUDP4, initproto.FileDNSUDP6:
			pc, err := net.FilePacketConn(f)
			if err == nil {
				pcs = append(pcs, pc)
			}
			first = errors.Join(first, err)
		default:
			ln, err := net.FileListener(f)
			if err == nil {
				lns = append(lns, ln)
			}
			first = errors.Join(first, err)
		}
		f.Close()
	}
	if first != nil {
		closeListeners(lns)
		for _, pc := range pcs {
			pc.Close()
		}
		return fmt.Errorf("using the transparent path's sockets from the sandbox: %w", first)
	}
	// lns: TCP4, TCP6, DNS TCP4, DNS TCP6 (files' order without the UDP ones).
	return t.serveSockets(srv, lns[:2], lns[2:], pcs)
}

// serveSockets serves the transparent listeners tcp with srv and the DNS
// stub on dnsTCP and dnsUDP.
func (t *transparentRun) serveSockets(srv *proxy.Server, tcp, dnsTCP []net.Listener, dnsUDP []net.PacketConn) error {
	stub, err := dnsstub.New(dnsstub.Config{Policy: t.policy(), Pool: t.pool, Report: t.dnsRefused})
	if err != nil {
		closeListeners(tcp)
		closeListeners(dnsTCP)
		for _, pc := range dnsUDP {
			pc.Close()
		}
		return err
	}
	names := poolNames{t.pool}
	logf := t.logf()
	for _, ln := range tcp {
		t.wg.Go(func() {
			if err := srv.ServeTransparent(ln, proxy.TransparentOptions{Names: names, Peek: true}); err != nil {
				logf("sandbox: the transparent listener stopped: %v", err)
			}
		})
	}
	for _, ln := range dnsTCP {
		t.wg.Go(func() {
			if err := stub.ServeTCP(t.ctx, ln); err != nil {
				logf("sandbox: the DNS stub (TCP) stopped: %v", err)
			}
		})
	}
	for _, pc := range dnsUDP {
		t.wg.Go(func() {
			if err := stub.ServeUDP(t.ctx, pc); err != nil {
				logf("sandbox: the DNS stub (UDP) stopped: %v", err)
			}
		})
	}
	return nil
}

// logf is the Spec's Logf, or nothing.
func (t *transparentRun) logf() func(string, ...any) {
	if t.spec.Logf == nil {
		return func(string, ...any) {}
	}
	return t.spec.Logf
}

// dnsRefused records a refused query in the run's audit sink.
func (t *transparentRun) dnsRefused(r dnsstub.Refusal) {
	if t.spec.Audit == nil {
		return
	}
	text := fmt.Sprintf("DNS query for %q (%s) answered %s: %s", r.Name, r.Type, r.RCode, r.Reason)
	if p := t.spec.Gate.PolicyNow(); r.Name != "" && p != nil {
		if d := p.CheckName(r.Name); !d.Allow && d.Reason == r.Reason {
			text = fmt.Sprintf("DNS query for %s (%s) answered %s: %s", r.Name, r.Type, r.RCode, d.Text)
		}
	}
	t.spec.Audit.Record(audit.Event{Time: time.Now(), Proto: ProtoDNS, Client: r.Client, Host: r.Name,
		Decision: audit.DecisionDeny, Reason: r.Reason, Text: text})
}

// stop ends the stub and the transparent listeners (the proxy server's
// shutdown, which may run meanwhile, closes them; stop waits for their
// loops), records the packets the sandbox's rules refused and removes the
// run's views. It may be called more than once.
func (t *transparentRun) stop() {
	if t.stopped {
		return
	}
	t.stopped = true
	t.stopc()
	// The views are no longer read (the sandbox is gone, or never ran):
	// they are removed while the stub stops and the counters are read.
	removed := make(chan struct{})
	go func() {
		defer close(removed)
		if t.dir != "" {
			_ = os.RemoveAll(t.dir)
		}
	}()
	// The counters are final too (nothing of the sandbox sends any more):
	// they are read while the stub stops, and recorded after its last
	// events.
	var refused nftfw.Refusals
	var rerr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		if t.refusals != nil {
			refused, rerr = t.refusals()
		}
	}()
	t.wg.Wait()
	<-read
	if rerr != nil {
		t.logf()("sandbox: reading the transparent path's refusal counters: %v", rerr)
	} else if t.refusals != nil {
		t.recordRefusals(refused)
	}
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
	<-removed
	starttrace.Mark("transparent path stopped")
}

// recordRefusals records one audit event per kind of packet refused.
func (t *transparentRun) recordRefusals(r nftfw.Refusals) {
	if t.spec.Audit == nil {
		return
	}
	for _, k := range []struct {
		n            uint64
		host, reason string
		what         string
	}{
		{r.UDP, "udp", ReasonUDPRefused, "UDP packets to non-local addresses (QUIC included) were refused: only DNS to sandgate's stub and TCP are let out"},
		{r.Other, "other", ReasonOtherRefused, "packets of protocols other than TCP and UDP (ICMP, ...) to non-local addresses were refused"},
		{r.TCP, "tcp", ReasonTCPDropped, "TCP packets that were not redirected to sandgate were dropped"},
	} {
		if k.n == 0 {
			continue
		}
		t.spec.Audit.Record(audit.Event{Time: time.Now(), Proto: ProtoPacket, Host: k.host, Decision: audit.DecisionDeny,
			Reason: k.reason, Text: fmt.Sprintf("%d %s", k.n, k.what)})
	}
}

// poolNames is a synthaddr.Pool as the proxy's SyntheticNames.
type poolNames struct{ p *synthaddr.Pool }

func (n poolNames) Contains(ip netip.Addr) bool { return n.p.Contains(ip) }

func (n poolNames) Acquire(ip netip.Addr) (string, []netip.Addr, func(), bool) {
	m, release, ok := n.p.Acquire(ip)
	return m.Name, m.Hosts, release, ok
}

// withOwnHostname adds the machine's own name (the sandbox's UTS namespace
// starts with it) on loopback to a hosts view that lacks it, as
// nss-myhostname would: programs look themselves up (git, for a default
// e-mail address), and that lookup must neither leave the sandbox nor be
// reported as a refusal.
func withOwnHostname(view []byte) []byte {
	name, err := os.Hostname()
	if err != nil || name == "" || strings.ContainsAny(name, " \t\n#") {
		return view
	}
	for _, line := range strings.Split(string(view), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) > 1 && slices.Contains(f[1:], name) {
			return view
		}
	}
	if len(view) > 0 && view[len(view)-1] != '\n' {
		view = append(view, '\n')
	}
	return append(view, "127.0.1.1 "+name+"\n"...)
}

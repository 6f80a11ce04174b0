//go:build linux

package sandbox

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/proxy"
	"github.com/sandgate/sandgate/runcgroup"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
	"github.com/sandgate/sandgate/setup"
	"github.com/sandgate/sandgate/synthaddr"
)

// The transparent path of an identity run. Runs share the host's network
// namespace, so each run's rules (nftfw.IdentityRun, in a table of their
// own beside setup's) name the offline user's sockets made in the run's
// own cgroup (runcgroup), into which the init is started. They redirect
// every TCP connection to a non-local address to the run's transparent
// listener and every DNS query to port 53 to its stub, and refuse other
// UDP with an ICMP error. Both listen on ports of the reserved set, marked
// like the proxy's, because setup's rules, which still apply after the
// redirect, let the offline user reach nothing else on the loopback; the
// stub listens for UDP too, at its TCP port, and setup's rules let the
// offline user's UDP through only when a redirect sent it to a reserved
// port (nftfw.RedirectedUDPRuleName), so every resolver, musl's and
// c-ares's included, is answered over UDP as well as TCP. Each
// run's synthetic IPv4 range is a slot of 198.18.0.0/15 (by the index of
// its transparent port in the reserved set) and its IPv6 range a random
// ULA /64; the host needs a route towards them (a default route does), or
// connect() fails before the rules see a packet.

// identityPath is the sandgate side of an identity run's transparent path:
// its listeners exist before the sandbox, like the proxy's.
type identityPath struct {
	*transparentRun
	tcp, dns []net.Listener
	udp      []net.PacketConn // the stub's UDP side, at the port of dns
	group    *runcgroup.Group
}

// serve serves the run's own listeners with srv (the sandbox passes none).
func (p *identityPath) serve(srv *proxy.Server, files []*os.File) error {
	closeFiles(files)
	return p.serveSockets(srv, p.tcp, p.dns, p.udp)
}

// runIDPrefix begins the ids of identity runs' transparent rules; the
// transparent port follows, so that a later run can tell a dead run's
// rules from a live one's (see pruneRuns).
const runIDPrefix = "p"

// newIdentityPath makes an identity run's transparent path for the offline
// user uid: two more reserved ports, the synthetic range, the views, the
// cgroup and the rules (in the network namespace at netns, the host's for
// real runs). Rules of runs that ended without removing theirs are removed
// first.
func newIdentityPath(spec Spec, lease *setup.Lease, netns string, uid uint32) (_ *identityPath, replace []initproto.ReplaceFile, err error) {
	p := &identityPath{}
	defer func() {
		if err != nil {
			closeListeners(p.tcp)
			closeListeners(p.dns)
			closePacketConns(p.udp)
			if p.transparentRun != nil {
				p.stop()
			} else if p.group != nil {
				_ = p.group.Remove()
			}
		}
	}()
	var index int
	if p.tcp, index, err = lease.ReserveLoopbackPair(); err != nil {
		return nil, nil, setupError(err)
	}
	if p.dns, _, err = lease.ReserveLoopbackPair(); err != nil {
		return nil, nil, setupError(err)
	}
	if p.udp, err = lease.ListenLoopbackUDP(listenerPort(p.dns[0])); err != nil {
		return nil, nil, setupError(err)
	}
	pool, err := slotPool(index)
	if err != nil {
		return nil, nil, err
	}
	if p.group, err = runcgroup.Create(runcgroup.DefaultParent, "run-"); err != nil {
		return nil, nil, &UnavailableError{Reason: "the transparent path needs a cgroup of its own for the run: " + err.Error(), Err: err}
	}
	t, replace, err := newTransparentViews(spec, pool)
	if err != nil {
		return nil, nil, err
	}
	p.transparentRun = t
	group := p.group
	t.undo = append(t.undo, func() {
		closeListeners(p.tcp)
		closeListeners(p.dns)
		closePacketConns(p.udp)
		if err := group.Remove(); err != nil {
			t.logf()("sandbox: %v", err)
		}
	})
	pruneRuns(netns, t.logf())
	r := nftfw.IdentityRun{
		ID:  runIDPrefix + strconv.Itoa(int(listenerPort(p.tcp[0]))) + "-" + strings.TrimPrefix(filepath.Base(group.Path), "run-"),
		UID: uid, CgroupID: group.ID, CgroupLevel: group.Level,
		TCPPort: listenerPort(p.tcp[0]), DNSPort: listenerPort(p.dns[0]),
	}
	if err := nftfw.AddRun(netns, r); err != nil {
		return nil, nil, &UnavailableError{Reason: "installing the run's transparent rules: " + err.Error(), Err: err}
	}
	t.refusals = func() (nftfw.Refusals, error) { return nftfw.RemoveRun(netns, r.ID) }
	return p, replace, nil
}

// slotPool is the synthetic pool of the identity run whose transparent
// port has index in the reserved set.
func slotPool(index int) (*synthaddr.Pool, error) {
	v4, err := synthaddr.V4Slot(index % synthaddr.V4Slots)
	if err != nil {
		return nil, fmt.Errorf("transparent path: %w", err)
	}
	v6, err := synthaddr.RandomULA()
	if err != nil {
		return nil, fmt.Errorf("transparent path: %w", err)
	}
	pool, err := synthaddr.New(synthaddr.Config{V4: v4, V6: v6})
	if err != nil {
		return nil, fmt.Errorf("transparent path: %w", err)
	}
	return pool, nil
}

// pruneRuns removes the transparent rules of identity runs that are gone
// (killed, or the machine stopped): a run holds its transparent port until
// after it has removed its rules, so a run whose port is free is over. A
// dead run's port taken again by a new run keeps the dead rules until a
// later run finds it free; they match no socket (cgroup ids are not
// reused).
func pruneRuns(netns string, logf func(string, ...any)) {
	if err := nftfw.PruneRuns(netns, runMayLive); err != nil {
		logf("sandbox: removing the transparent rules of runs that are gone: %v", err)
	}
}

// runMayLive reports whether the identity run of transparent rules id may
// still be running: its transparent port is held (or id is not of the
// form this package gives).
func runMayLive(id string) bool {
	rest, ok := strings.CutPrefix(id, runIDPrefix)
	port, _, found := strings.Cut(rest, "-")
	n, perr := strconv.Atoi(port)
	if !ok || !found || perr != nil || n <= 0 || n > 65535 {
		return true
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return true
	}
	ln.Close()
	return false
}

// StaleTransparentRules returns the ids of the transparent rules that
// identity runs which are gone (killed, or the machine stopped) left in
// the network namespace at netns ("" is the caller's own); the next
// transparent identity run removes them. They match no socket. Reading
// them needs CAP_NET_ADMIN.
func StaleTransparentRules(netns string) ([]string, error) {
	var stale []string
	err := nftfw.PruneRuns(netns, func(id string) bool {
		if !slices.Contains(stale, id) && !runMayLive(id) {
			stale = append(stale, id) // once, though a run has several rules
		}
		return true // only look
	})
	return stale, err
}

// closePacketConns closes pcs.
func closePacketConns(pcs []net.PacketConn) {
	for _, pc := range pcs {
		pc.Close()
	}
}

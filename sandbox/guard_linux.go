//go:build linux

package sandbox

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/setup"
)

// A run of the offline user is confined only as long as sandgate's
// nftables rules stay as setup installed them: a `nft flush ruleset`,
// another tool or a reboot-time race can remove them under it. So from
// before CMD starts until the run has ended, a rulesGuard keeps them under
// watch (nftfw.Watch: netlink notifications, not polling). When they break,
// the supervisor kills the sandbox at once and the run fails with the
// reason (exit 125); once CMD has ended, one last look catches a break
// whose notification was still on its way.

// Reading the rules at the end of a run: a read that fails (a dump
// interrupted by a concurrent change) is tried again before it counts.
const (
	settleAttempts = 3
	settleBackoff  = 20 * time.Millisecond
)

// rulesGuard watches the rules one run relies on. A nil *rulesGuard
// watches nothing (an online run, which has no rules).
type rulesGuard struct {
	netns  string
	plan   ruleplan.Plan
	uid    uint32
	fix    string // the command that restores the rules
	breaks chan *UnavailableError
	stop   func()
}

// watchRules starts watching the rules of the setup m, in the network
// namespace at netns ("" is sandgate's own), for the offline user uid. The
// rules must match m now (nftfw.Watch checks them after subscribing): else
// the run must not start, and the error says why.
func watchRules(ctx context.Context, netns string, m setup.Marker, uid uint32) (*rulesGuard, error) {
	plan, err := ruleplan.Build(m.ProxyPorts, m.AllowLocalBinding)
	if err != nil { // cannot happen: the lease checked the marker
		return nil, &UnavailableError{Reason: "the setup marker's proxy ports are invalid: " + err.Error(), Err: err}
	}
	g := &rulesGuard{netns: netns, plan: plan, uid: uid, breaks: make(chan *UnavailableError, 1),
		fix: setup.FixCommand(true, m.AllowLocalBinding, m.AllowLocalBinding, nil)}
	stop, err := nftfw.Watch(ctx, netns, plan, uid, g.onBreak)
	switch {
	case errors.Is(err, nftfw.ErrDrift):
		return nil, &UnavailableError{Reason: err.Error() + " (they changed after the run checked them)", Fix: "run `" + g.fix + "`", Err: err}
	case err != nil:
		return nil, &UnavailableError{Reason: "watching the firewall rules the run relies on: " + err.Error(), Err: err}
	}
	g.stop = stop
	return g, nil
}

// onBreak is the watch's callback: the first break is handed to the
// supervisor.
func (g *rulesGuard) onBreak(reason string) {
	select {
	case g.breaks <- g.broke(reason + " while the run was live"):
	default: // one is waiting already
	}
}

// broke is the error of a run whose rules broke for reason.
func (g *rulesGuard) broke(reason string) *UnavailableError {
	return &UnavailableError{Reason: reason, Fix: "run `" + g.fix + "` to restore the rules"}
}

// broken is where the watch reports a break (nil: nowhere).
func (g *rulesGuard) broken() <-chan *UnavailableError {
	if g == nil {
		return nil
	}
	return g.breaks
}

// close ends the watch. Calling it again does nothing.
func (g *rulesGuard) close() {
	if g != nil {
		g.stop()
	}
}

// settle ends the watch once the run has ended, and returns err, the
// run's own outcome, unless that was a success and the rules broke after
// all: a break the watch reported after the supervisor had stopped
// listening, or one that a last look at the rules finds. A run whose rules
// cannot be read at the end is not taken as confined either.
func (g *rulesGuard) settle(err error) error {
	if g == nil {
		return err
	}
	g.close()
	if err != nil {
		return err
	}
	select {
	case ue := <-g.breaks:
		return ue
	default:
	}
	var diffs []string
	for i := range settleAttempts {
		if diffs, err = nftfw.Verify(g.netns, g.plan, g.uid); err == nil {
			break
		}
		time.Sleep(settleBackoff * time.Duration(i+1))
	}
	switch {
	case err != nil:
		return &UnavailableError{Reason: "the firewall rules could not be read when the run ended, to check that they held: " + err.Error(), Err: err}
	case len(diffs) > 0:
		return g.broke("sandgate's nftables rules no longer matched the setup when the run ended (" + strings.Join(diffs, "; ") + "), so CMD may have run without them")
	}
	return nil
}

package nftfw

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/sandgate/sandgate/ruleplan"
)

// This file is the pure half of Watch (watch_linux.go): which nftables
// notifications concern sandgate's table, and the loop that re-verifies the
// table after each and reports when enforcement no longer matches the plan.

// ErrDrift is wrapped by the error Watch returns when sandgate's table does
// not match the plan when the watch begins.
var ErrDrift = errors.New("sandgate's nftables rules do not match what setup installs")

// Kernel numbers of nftables notifications (linux/netfilter/nf_tables.h).
const (
	msgNewGen  = 15 // NFT_MSG_NEWGEN: the end of a committed transaction
	msgTrace   = 17 // NFT_MSG_TRACE: a packet trace, not a change
	attrTable  = 1  // NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE,...}: the table
	familyINet = 1  // NFPROTO_INET
)

// notification is one nftables notification: its message type (NFT_MSG_*,
// the low byte of the netlink message type) and its payload, an nfgenmsg
// header and then attributes.
type notification struct {
	typ  uint8
	data []byte
}

// touchesOurs reports whether n may concern sandgate's table: a change to
// a table, chain, rule, set, element or object of table "sandgate" in the
// inet family, or a change that does not say which table it is about.
// Generation markers and traces are not changes.
func touchesOurs(n notification) bool {
	if n.typ == msgNewGen || n.typ == msgTrace {
		return false
	}
	if len(n.data) < 4 {
		return true // not even a header: be safe, look
	}
	family := n.data[0]
	ad, err := netlink.NewAttributeDecoder(n.data[4:])
	if err != nil {
		return true
	}
	for ad.Next() {
		if ad.Type() == attrTable {
			return family == familyINet && strings.TrimRight(string(ad.Bytes()), "\x00") == TableName
		}
	}
	return true
}

// errLost is returned by an events source when notifications were lost
// (the socket's receive buffer overflowed): the watch then looks again.
var errLost = errors.New("nftables notifications were lost")

// events is a subscription to the nftables notifications of one network
// namespace.
type events interface {
	// receive blocks until notifications arrive and returns them, or
	// errLost, or another error when the subscription is over (for
	// example after close).
	receive() ([]notification, error)
	// close ends the subscription; a blocked receive returns.
	close() error
}

// Read attempts per check: a read that fails (say, a dump interrupted by
// a concurrent change) is tried again before it counts as a break.
const (
	readAttempts = 3
	readBackoff  = 20 * time.Millisecond
)

// watcher is one running Watch.
type watcher struct {
	sub     events
	b       Backend
	plan    ruleplan.Plan
	uid     uint32
	onBreak func(reason string)
	done    chan struct{} // closed when loop has returned

	broken bool // the last check found enforcement broken (loop's own)

	mu      sync.Mutex
	stopped bool // stop was called or the context ended
	calling bool // onBreak is running
}

// watch is Watch over an events source and a Backend: sub must already be
// subscribed, so that no change between the first check and the watching
// goes unseen.
func watch(ctx context.Context, sub events, b Backend, plan ruleplan.Plan, offlineUID uint32, onBreak func(reason string)) (stop func(), err error) {
	diffs, err := VerifyIn(b, plan, offlineUID)
	if err != nil {
		sub.close()
		return nil, fmt.Errorf("verifying %s before watching it: %w", tableDesc, err)
	}
	if len(diffs) > 0 {
		sub.close()
		return nil, fmt.Errorf("%w: %s", ErrDrift, strings.Join(diffs, "; "))
	}
	w := &watcher{sub: sub, b: b, plan: plan, uid: offlineUID, onBreak: onBreak, done: make(chan struct{})}
	go w.loop()
	go func() {
		select {
		case <-ctx.Done():
			w.halt()
		case <-w.done:
		}
	}()
	return w.stop, nil
}

// loop checks the table again after every batch of notifications that may
// concern it, and after lost ones, until the watch is stopped. When the
// subscription fails it reports that as a break, since nothing watches
// the table any more.
func (w *watcher) loop() {
	defer close(w.done)
	for {
		ns, err := w.sub.receive()
		if w.isStopped() {
			return
		}
		switch {
		case errors.Is(err, errLost):
		case err != nil:
			w.fire(fmt.Sprintf("watching %s stopped: %v", tableDesc, err))
			return
		case !slices.ContainsFunc(ns, touchesOurs):
			continue
		}
		w.check()
	}
}

// check verifies the table and reports a break, once per break: after a
// check that finds the table as it should be (repaired), a later break is
// reported again.
func (w *watcher) check() {
	var diffs []string
	var err error
	for i := range readAttempts {
		if diffs, err = VerifyIn(w.b, w.plan, w.uid); err == nil {
			break
		}
		time.Sleep(readBackoff * time.Duration(i+1))
	}
	switch {
	case err != nil:
		w.breakOnce(fmt.Sprintf("cannot read %s to check it: %v", tableDesc, err))
	case len(diffs) > 0:
		w.breakOnce(breakReason(diffs))
	default:
		w.broken = false
	}
}

// breakReason says in one line what Verify found.
func breakReason(diffs []string) string {
	if len(diffs) == 1 && diffs[0] == tableDesc+" is missing" {
		return "sandgate's nftables table (inet " + TableName + ") was deleted"
	}
	return "sandgate's nftables rules changed: " + strings.Join(diffs, "; ")
}

func (w *watcher) breakOnce(reason string) {
	if !w.broken {
		w.broken = true
		w.fire(reason)
	}
}

// fire calls onBreak, unless the watch has been stopped.
func (w *watcher) fire(reason string) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.calling = true
	w.mu.Unlock()
	w.onBreak(reason)
	w.mu.Lock()
	w.calling = false
	w.mu.Unlock()
}

func (w *watcher) isStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// halt stops the watch without waiting for it, and says whether onBreak is
// running.
func (w *watcher) halt() (calling bool) {
	w.mu.Lock()
	first := !w.stopped
	w.stopped = true
	calling = w.calling
	w.mu.Unlock()
	if first {
		w.sub.close()
	}
	return calling
}

// stop ends the watch: it returns once the watch has ended (or at once
// while onBreak is running, which may be what called it), and no onBreak
// call begins after it has returned. Calling it again does nothing.
func (w *watcher) stop() {
	if !w.halt() {
		<-w.done
	}
}

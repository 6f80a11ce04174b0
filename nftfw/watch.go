package nftfw

import (
	"context"
	"encoding/binary"
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
// notifications concern sandgate's table, which transactions left it
// broken, and the loop that re-verifies the table after each and reports
// when enforcement no longer matches the plan.

// dormantReason is the break of a table made dormant.
const dormantReason = "sandgate's nftables table (inet " + TableName + ") was made dormant: the kernel does not evaluate its rules"

// ErrDrift is wrapped by the error Watch returns when sandgate's table does
// not match the plan when the watch begins.
var ErrDrift = errors.New("sandgate's nftables rules do not match what setup installs")

// Kernel numbers of nftables notifications (linux/netfilter/nf_tables.h).
const (
	msgNewTable = 0  // NFT_MSG_NEWTABLE
	msgDelTable = 2  // NFT_MSG_DELTABLE
	msgNewGen   = 15 // NFT_MSG_NEWGEN: the end of a committed transaction
	msgTrace    = 17 // NFT_MSG_TRACE: a packet trace, not a change
	attrTable   = 1  // NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE,...}: the table
	attrTableFl = 2  // NFTA_TABLE_FLAGS (in a table's own messages)
	familyINet  = 1  // NFPROTO_INET
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
	ours, known := namesOurs(n)
	return ours || !known
}

// namesOurs reports whether n names sandgate's table (family inet, table
// "sandgate"); known is false when n does not say which table it is
// about (no header, or no table attribute).
func namesOurs(n notification) (ours, known bool) {
	if len(n.data) < 4 {
		return false, false
	}
	family := n.data[0]
	ad, err := netlink.NewAttributeDecoder(n.data[4:])
	if err != nil {
		return false, false
	}
	for ad.Next() {
		if ad.Type() == attrTable {
			return family == familyINet && strings.TrimRight(string(ad.Bytes()), "\x00") == TableName, true
		}
	}
	return false, false
}

// madeDormant reports whether n, a notification of sandgate's table
// itself (NFT_MSG_NEWTABLE), says the table is dormant: a change of the
// table's flags on its own also comes as NFT_MSG_NEWTABLE.
func madeDormant(n notification) bool {
	if n.typ != msgNewTable || len(n.data) < 4 {
		return false
	}
	ad, err := netlink.NewAttributeDecoder(n.data[4:])
	if err != nil {
		return false
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		if ad.Type() == attrTableFl && len(ad.Bytes()) == 4 {
			return ad.Uint32()&tableDormant != 0
		}
	}
	return false
}

// txn follows one nftables transaction through its notifications, which
// the kernel sends in the order of the transaction's changes and ends with
// NFT_MSG_NEWGEN. Packets see only the state at its end: sandgate's table
// is whole there when the transaction made it anew after any change to it
// (Apply deletes and re-creates it in one transaction), and may not be
// when the transaction deleted it, or changed a part of it, and did not,
// or made it dormant (its rules kept but not evaluated).
type txn struct {
	deleted bool // our table was deleted, and not made again since
	changed bool // a part of our table changed, and the table was not made again since
	rebuilt bool // our table was made (again), after every change so far
	dormant bool // our table was made dormant, and not made again (awake) since
}

// follow takes notifications in order and returns why sandgate's table was
// not whole at the end of a transaction among them ("" when it always
// was): the reading of the table afterwards may come too late to see it,
// when another transaction has put the table back meanwhile.
func (t *txn) follow(ns []notification) (lapse string) {
	for _, n := range ns {
		if n.typ == msgNewGen {
			switch {
			case t.deleted:
				lapse = "sandgate's nftables table (inet " + TableName + ") was deleted"
			case t.dormant && lapse == "":
				lapse = dormantReason
			case t.changed && lapse == "":
				lapse = "sandgate's nftables rules changed: table inet " + TableName + " was modified in place"
			}
			*t = txn{}
			continue
		}
		if ours, _ := namesOurs(n); !ours || n.typ == msgTrace {
			continue
		}
		switch n.typ {
		case msgNewTable:
			if madeDormant(n) { // there, but its rules not evaluated
				*t = txn{dormant: true}
			} else {
				*t = txn{rebuilt: true}
			}
		case msgDelTable:
			*t = txn{deleted: true}
		default:
			if !t.rebuilt {
				t.changed = true
			}
		}
	}
	return lapse
}

// errLost is returned by an events source when notifications were lost
// (the socket's receive buffer overflowed): the watch then looks again.
var errLost = errors.New("nftables notifications were lost")

// errNoneQueued is returned by pending when no notifications are queued.
var errNoneQueued = errors.New("no nftables notifications queued")

// events is a subscription to the nftables notifications of one network
// namespace.
type events interface {
	// receive blocks until notifications arrive and returns them, or
	// errLost, or another error when the subscription is over (for
	// example after close) or interrupt was called.
	receive() ([]notification, error)
	// pending returns, without waiting, the next notifications already
	// queued, or errNoneQueued, or errLost.
	pending() ([]notification, error)
	// interrupt makes a blocked receive, and every later one, return at
	// once with an error; pending still works.
	interrupt()
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
	txn    txn  // the transaction the notifications so far are in (loop's own)

	mu       sync.Mutex
	stopped  bool // stop was called or the context ended
	draining bool // stop waits for the notifications queued before it
	calling  bool // onBreak is running
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

// loop takes every batch of notifications until the watch is stopped (and,
// when stop waits for them, the ones queued before). When the
// subscription fails it reports that as a break, since nothing watches
// the table any more.
func (w *watcher) loop() {
	defer close(w.done)
	for {
		ns, err := w.sub.receive()
		if stopped, draining := w.state(); stopped {
			if draining {
				if err == nil {
					w.take(ns, nil)
				}
				w.drain()
				w.sub.close()
			}
			return
		}
		if err != nil && !errors.Is(err, errLost) {
			w.fire(fmt.Sprintf("watching %s stopped: %v", tableDesc, err))
			return
		}
		w.take(ns, err)
	}
}

// drain takes the notifications still queued.
func (w *watcher) drain() {
	for {
		ns, err := w.sub.pending()
		if err != nil && !errors.Is(err, errLost) { // none queued, or the socket failed
			return
		}
		w.take(ns, err)
	}
}

// take deals with one batch of notifications (or errLost: some were lost):
// it follows the transactions, and checks the table again when the batch
// may concern it.
func (w *watcher) take(ns []notification, err error) {
	if err != nil { // lost: which transaction comes next is unknown
		w.txn = txn{}
		w.check("")
		return
	}
	lapse := w.txn.follow(ns)
	if lapse != "" || slices.ContainsFunc(ns, touchesOurs) {
		w.check(lapse)
	}
}

// check verifies the table and reports a break, once per break: after a
// check that finds the table as it should be (repaired), a later break is
// reported again. lapse, when set, says how a transaction left the table
// broken: reported even when the table is whole again by now, since
// packets went through in between.
func (w *watcher) check(lapse string) {
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
	case lapse != "" && !w.broken: // (when broken, this break was reported)
		w.fire(lapse)
	default:
		w.broken = false
	}
}

// breakReason says in one line what Verify found.
func breakReason(diffs []string) string {
	if len(diffs) == 1 && diffs[0] == tableDesc+" is missing" {
		return "sandgate's nftables table (inet " + TableName + ") was deleted"
	}
	if len(diffs) == 1 && diffs[0] == dormantDiff {
		return dormantReason
	}
	return "sandgate's nftables rules changed: " + strings.Join(diffs, "; ")
}

func (w *watcher) breakOnce(reason string) {
	if !w.broken {
		w.broken = true
		w.fire(reason)
	}
}

// fire calls onBreak, unless the watch has been stopped (other than by a
// stop that waits for the notifications queued before it).
func (w *watcher) fire(reason string) {
	w.mu.Lock()
	if w.stopped && !w.draining {
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

// state says whether the watch was stopped, and whether the stop waits for
// the notifications queued before it.
func (w *watcher) state() (stopped, draining bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped, w.draining
}

// halt stops the watch without waiting for it or for the notifications
// queued, and says whether onBreak is running.
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

// stop ends the watch. The notifications of every change committed before
// it was called are taken first (a break among them is reported before it
// returns); then it returns once the watch has ended. Called while onBreak
// is running (which may be what called it), it returns at once instead,
// without waiting for anything. No onBreak call begins after it has
// returned. Calling it again does nothing.
func (w *watcher) stop() {
	w.mu.Lock()
	first := !w.stopped
	w.stopped = true
	calling := w.calling
	drain := first && !calling
	if drain {
		w.draining = true
	}
	w.mu.Unlock()
	switch {
	case calling:
		if first {
			w.sub.close()
		}
		return
	case drain:
		w.sub.interrupt()
	}
	<-w.done
}

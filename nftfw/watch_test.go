package nftfw

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
)

// note builds an nftables notification of type typ for family, naming
// table (no table attribute when table is "").
func note(t testing.TB, typ, family uint8, table string) notification {
	t.Helper()
	var attrs []netlink.Attribute
	if table != "" {
		attrs = append(attrs, netlink.Attribute{Type: attrTable, Data: append([]byte(table), 0)})
	}
	attrs = append(attrs, netlink.Attribute{Type: 2, Data: []byte("output\x00")})
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		t.Fatal(err)
	}
	return notification{typ: typ, data: append([]byte{family, 0, 0, 0}, b...)}
}

// tableNote builds the notification of sandgate's table as the kernel
// sends it when the table is made, or its flags change: NFT_MSG_NEWTABLE
// with the name and the flags.
func tableNote(t testing.TB, flags uint32) notification {
	t.Helper()
	b, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: attrTable, Data: append([]byte(TableName), 0)},
		{Type: attrTableFl, Data: binary.BigEndian.AppendUint32(nil, flags)},
		{Type: 3, Data: binary.BigEndian.AppendUint32(nil, 2)}, // NFTA_TABLE_USE
	})
	if err != nil {
		t.Fatal(err)
	}
	return notification{typ: msgNewTable, data: append([]byte{familyINet, 0, 0, 0}, b...)}
}

const (
	msgNewRule, msgDelRule, msgNewSetElem = 6, 8, 12
	familyIP                              = 2
)

func TestTouchesOurs(t *testing.T) {
	for _, c := range []struct {
		name string
		n    notification
		want bool
	}{
		{"our table deleted", note(t, msgDelTable, familyINet, TableName), true},
		{"our rule deleted", note(t, msgDelRule, familyINet, TableName), true},
		{"our rule added", note(t, msgNewRule, familyINet, TableName), true},
		{"our set's elements", note(t, msgNewSetElem, familyINet, TableName), true},
		{"a table of the same name in family ip", note(t, msgDelTable, familyIP, TableName), false},
		{"another inet table", note(t, msgNewRule, familyINet, "filter"), false},
		{"a longer name", note(t, msgNewRule, familyINet, TableName+"2"), false},
		{"the end of a transaction", note(t, msgNewGen, familyINet, TableName), false},
		{"a trace", note(t, msgTrace, familyINet, TableName), false},
		{"no table named", note(t, msgDelTable, familyINet, ""), true},
		{"no header", notification{typ: msgDelTable, data: []byte{1, 0}}, true},
		{"bad attributes", notification{typ: msgDelTable, data: []byte{1, 0, 0, 0, 9}}, true},
	} {
		if got := touchesOurs(c.n); got != c.want {
			t.Errorf("%s: touchesOurs = %v, want %v", c.name, got, c.want)
		}
	}
}

// FuzzTouchesOurs checks that any notification can be classified, and
// that a well-formed one is ours exactly when it names inet "sandgate".
func FuzzTouchesOurs(f *testing.F) {
	f.Add(uint8(msgDelTable), uint8(familyINet), TableName, []byte{})
	f.Add(uint8(msgNewRule), uint8(familyIP), "filter", []byte{4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, typ, family uint8, table string, raw []byte) {
		touchesOurs(notification{typ: typ, data: raw})
		if table == "" || strings.ContainsRune(table, 0) || typ == msgNewGen || typ == msgTrace {
			return
		}
		want := family == familyINet && table == TableName
		if got := touchesOurs(note(t, typ, family, table)); got != want {
			t.Fatalf("touchesOurs(type %d, family %d, table %q) = %v, want %v", typ, family, table, got, want)
		}
	})
}

// fakeEvents is an events source the test feeds by hand: send hands a
// batch to a waiting receive, queue leaves one for pending.
type fakeEvents struct {
	batches     chan batch
	queued      chan batch
	closed      chan struct{}
	interrupted chan struct{}
	once, iOnce sync.Once
}

type batch struct {
	ns  []notification
	err error
}

func newFakeEvents() *fakeEvents {
	return &fakeEvents{batches: make(chan batch), queued: make(chan batch, 16), closed: make(chan struct{}), interrupted: make(chan struct{})}
}

func (f *fakeEvents) receive() ([]notification, error) {
	select {
	case b := <-f.batches:
		return b.ns, b.err
	case <-f.closed:
		return nil, errors.New("use of closed subscription")
	case <-f.interrupted:
		return nil, errors.New("i/o timeout")
	}
}

func (f *fakeEvents) pending() ([]notification, error) {
	select {
	case b := <-f.queued:
		return b.ns, b.err
	default:
		return nil, errNoneQueued
	}
}

func (f *fakeEvents) interrupt() { f.iOnce.Do(func() { close(f.interrupted) }) }

// queue leaves b queued, for pending.
func (f *fakeEvents) queue(b batch) { f.queued <- b }

func (f *fakeEvents) close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeEvents) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// send hands b to the watch; when it returns, the watch has taken b.
func (f *fakeEvents) send(t *testing.T, b batch) {
	t.Helper()
	select {
	case f.batches <- b:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not take the next notifications")
	}
}

// settle waits until the watch has dealt with everything sent before (it
// takes the next batch only then), with a batch that is not about us.
func (f *fakeEvents) settle(t *testing.T) {
	t.Helper()
	f.send(t, batch{ns: []notification{note(t, msgNewRule, familyINet, "filter")}})
	f.send(t, batch{ns: []notification{note(t, msgNewRule, familyINet, "filter")}})
}

func TestWatchRefusesABrokenStart(t *testing.T) {
	plan := mustPlan(t, proxyPorts, false)
	ev := newFakeEvents()
	_, err := watch(context.Background(), ev, &memBackend{}, plan, offUID, func(string) { t.Error("onBreak called") })
	if !errors.Is(err, ErrDrift) || !strings.Contains(err.Error(), "is missing") || !ev.isClosed() {
		t.Errorf("watch of a missing table = %v (closed %v), want ErrDrift and the subscription closed", err, ev.isClosed())
	}
	ev = newFakeEvents()
	_, err = watch(context.Background(), ev, &memBackend{fail: errors.New("EPERM")}, plan, offUID, func(string) { t.Error("onBreak called") })
	if err == nil || errors.Is(err, ErrDrift) || !strings.Contains(err.Error(), "EPERM") || !ev.isClosed() {
		t.Errorf("watch that cannot read = %v (closed %v), want the read error and the subscription closed", err, ev.isClosed())
	}
}

// TestWatch drives a watch through breaks, repairs and harmless changes.
func TestWatch(t *testing.T) {
	plan := mustPlan(t, proxyPorts, false)
	b := &memBackend{}
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	ev := newFakeEvents()
	reasons := make(chan string, 10)
	stop, err := watch(context.Background(), ev, b, plan, offUID, func(r string) { reasons <- r })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// ours is a transaction that changes the table in place; applied is
	// the one Apply makes, which deletes it and makes it anew.
	ours := batch{ns: []notification{note(t, msgDelRule, familyINet, TableName), note(t, msgNewGen, 0, "")}}
	applied := batch{ns: []notification{note(t, msgDelRule, familyINet, TableName), note(t, msgDelTable, familyINet, TableName),
		note(t, msgNewTable, familyINet, TableName), note(t, msgNewRule, familyINet, TableName), note(t, msgNewGen, 0, "")}}
	expect := func(what, want string) {
		t.Helper()
		ev.settle(t)
		select {
		case r := <-reasons:
			if want == "" {
				t.Errorf("%s: onBreak(%q), want no call", what, r)
			} else if !strings.Contains(r, want) {
				t.Errorf("%s: onBreak(%q), want %q", what, r, want)
			}
		default:
			if want != "" {
				t.Errorf("%s: no onBreak, want %q", what, want)
			}
		}
	}

	// Changes elsewhere are not even looked at.
	reads := b.reads
	ev.settle(t)
	if b.reads != reads {
		t.Errorf("changes to other tables read the table %d times", b.reads-reads)
	}
	// The same plan applied again: looked at, and fine.
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	ev.send(t, applied)
	expect("identical re-apply", "")
	if b.reads == reads {
		t.Error("a change to the table was not looked at")
	}
	// A rule deleted: one call, however many changes follow while broken.
	b.t.OutputRules = b.t.OutputRules[1:]
	ev.send(t, ours)
	expect("rule deleted", "sandgate's nftables rules changed: rule sandgate-offline-block-nonlocal is missing")
	ev.send(t, ours)
	expect("still broken", "")
	// Repaired, then deleted: called again.
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	ev.send(t, applied)
	expect("repaired", "")
	if err := b.Delete(); err != nil {
		t.Fatal(err)
	}
	ev.send(t, ours)
	expect("table deleted", "sandgate's nftables table (inet sandgate) was deleted")
	// Lost notifications are a reason to look.
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	ev.send(t, applied)
	expect("repaired again", "")
	b.t.Ports = []uint16{47100}
	ev.send(t, batch{err: errLost})
	expect("lost notifications", "set proxy_ports holds ports [47100], expected [47100 47101]")
	// A table that cannot be read counts as broken once reads keep failing.
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	ev.send(t, applied)
	expect("repaired a third time", "")
	b.fail = errors.New("netlink: dump interrupted")
	ev.send(t, ours)
	expect("unreadable", "cannot read the nftables table inet sandgate to check it: netlink: dump interrupted")
	b.fail = nil
	// Broken and put back before the look: the transactions tell.
	ev.send(t, applied)
	expect("repaired a fourth time", "")
	ev.send(t, batch{ns: []notification{note(t, msgDelTable, familyINet, TableName)}})
	ev.send(t, batch{ns: []notification{note(t, msgNewGen, 0, "")}}) // a transaction's end may come apart
	expect("deleted and put back", "sandgate's nftables table (inet sandgate) was deleted")
	ev.send(t, ours)
	expect("changed in place and put back", "sandgate's nftables rules changed: table inet sandgate was modified in place")

	// Made dormant (a flags change of the table, nothing else): the
	// rules are all there, but not evaluated.
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	ev.send(t, applied)
	expect("repaired a fifth time", "")
	dormant := batch{ns: []notification{tableNote(t, tableDormant), note(t, msgNewGen, 0, "")}}
	b.flags = tableDormant
	ev.send(t, dormant)
	expect("made dormant", dormantReason)
	b.flags = 0
	ev.send(t, batch{ns: []notification{tableNote(t, 0), note(t, msgNewGen, 0, "")}})
	expect("woken", "")
	ev.send(t, dormant) // and woken again before the look
	expect("made dormant and woken", dormantReason)

	// After stop, nothing is called and the subscription is closed.
	stop()
	if !ev.isClosed() {
		t.Error("stop left the subscription open")
	}
	select {
	case r := <-reasons:
		t.Errorf("onBreak(%q) after the last check", r)
	default:
	}
	stop() // again: nothing
}

// TestWatchEnds checks the other ways a watch ends: its subscription
// failing (reported, since nothing watches any more), its context ending,
// and stop called from onBreak.
func TestWatchEnds(t *testing.T) {
	plan := mustPlan(t, proxyPorts, false)
	start := func(ctx context.Context, onBreak func(string)) (*fakeEvents, *memBackend, func()) {
		t.Helper()
		b := &memBackend{}
		if err := ApplyTo(b, plan, offUID); err != nil {
			t.Fatal(err)
		}
		ev := newFakeEvents()
		stop, err := watch(ctx, ev, b, plan, offUID, onBreak)
		if err != nil {
			t.Fatal(err)
		}
		return ev, b, stop
	}

	reasons := make(chan string, 1)
	ev, _, stop := start(context.Background(), func(r string) { reasons <- r })
	ev.send(t, batch{err: errors.New("recvmsg: bad file descriptor")})
	select {
	case r := <-reasons:
		if !strings.Contains(r, "watching the nftables table inet sandgate stopped: recvmsg: bad file descriptor") {
			t.Errorf("onBreak(%q) for a failed subscription", r)
		}
	case <-time.After(5 * time.Second):
		t.Error("a failed subscription was not reported")
	}
	stop()

	ctx, cancel := context.WithCancel(context.Background())
	ev, _, stop = start(ctx, func(r string) { t.Errorf("onBreak(%q) after the context ended", r) })
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for !ev.isClosed() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !ev.isClosed() {
		t.Error("the end of the context did not end the watch")
	}
	stop()

	var stopFromBreak func()
	called := make(chan struct{})
	ev, b, stopFromBreak := start(context.Background(), func(string) {
		stopFromBreak()
		close(called)
	})
	b.t = nil
	ev.send(t, batch{err: errLost})
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("stop called from onBreak did not return")
	}
	if !ev.isClosed() {
		t.Error("stop from onBreak left the subscription open")
	}
}

// TestTxnFollow: a transaction leaves sandgate's table whole only when it
// made the table anew after every change to it, as Apply does.
func TestTxnFollow(t *testing.T) {
	ours := func(typ uint8) notification { return note(t, typ, familyINet, TableName) }
	end := note(t, msgNewGen, 0, "")
	const deleted, changed = "sandgate's nftables table (inet sandgate) was deleted", "table inet sandgate was modified in place"
	for _, c := range []struct {
		name string
		ns   []notification
		want string // "" or a part of the lapse
	}{
		{"Apply", []notification{ours(msgDelRule), ours(msgDelTable), ours(msgNewTable), ours(msgNewRule), ours(msgNewSetElem), end}, ""},
		{"first install", []notification{ours(msgNewTable), ours(msgNewRule), end}, ""},
		{"table deleted", []notification{ours(msgDelRule), ours(msgDelTable), end}, deleted},
		{"made, then deleted", []notification{ours(msgNewTable), ours(msgDelTable), end}, deleted},
		{"a rule deleted", []notification{ours(msgDelRule), end}, changed},
		{"an element added", []notification{ours(msgNewSetElem), end}, changed},
		{"changed after being made anew", []notification{ours(msgDelTable), ours(msgNewTable), ours(msgDelRule), end}, ""},
		{"another table", []notification{note(t, msgDelTable, familyINet, "filter"), end}, ""},
		{"family ip", []notification{note(t, msgDelTable, familyIP, TableName), end}, ""},
		{"no end yet", []notification{ours(msgDelTable)}, ""},
		{"a clean transaction after a bad one", []notification{ours(msgDelRule), end, ours(msgDelTable), ours(msgNewTable), end}, changed},
		{"a trace", []notification{note(t, msgTrace, familyINet, TableName), end}, ""},
		{"made dormant", []notification{tableNote(t, tableDormant), end}, "was made dormant"},
		{"made dormant and changed", []notification{tableNote(t, tableDormant), ours(msgDelRule), end}, "was made dormant"},
		{"woken", []notification{tableNote(t, 0), end}, ""},
		{"owned", []notification{tableNote(t, tableOwner), ours(msgNewRule), end}, ""},
		{"made anew dormant", []notification{ours(msgDelTable), tableNote(t, tableDormant|tableOwner), end}, "was made dormant"},
		{"made dormant, then anew", []notification{tableNote(t, tableDormant), ours(msgDelTable), tableNote(t, 0), end}, ""},
	} {
		var tx txn
		got := tx.follow(c.ns)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: follow = %q, want %q", c.name, got, c.want)
		}
	}
	// A transaction's notifications may come in several batches.
	var tx txn
	if got := tx.follow([]notification{ours(msgDelTable)}); got != "" {
		t.Errorf("before the end: %q", got)
	}
	if got := tx.follow([]notification{end}); !strings.Contains(got, deleted) {
		t.Errorf("at the end, in a batch of its own: %q", got)
	}
	if got := tx.follow([]notification{ours(msgNewRule), ours(msgNewTable), end}); got != "" {
		t.Errorf("the next transaction made the table anew: %q", got)
	}
}

// TestWatchStopDrains: stop first takes the notifications queued before
// it, and a break among them is reported before it returns; stopped by
// its context instead, the watch reports nothing more.
func TestWatchStopDrains(t *testing.T) {
	plan := mustPlan(t, proxyPorts, false)
	b := &memBackend{}
	if err := ApplyTo(b, plan, offUID); err != nil {
		t.Fatal(err)
	}
	ev := newFakeEvents()
	var mu sync.Mutex
	var reasons []string
	stop, err := watch(context.Background(), ev, b, plan, offUID, func(r string) { mu.Lock(); reasons = append(reasons, r); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	ev.queue(batch{ns: []notification{note(t, msgNewRule, familyINet, "filter"), note(t, msgNewGen, 0, "")}})
	ev.queue(batch{ns: []notification{note(t, msgDelTable, familyINet, TableName), note(t, msgNewGen, 0, "")}})
	stop()
	mu.Lock()
	if len(reasons) != 1 || !strings.Contains(reasons[0], "was deleted") {
		t.Errorf("onBreak calls %q, want the queued deletion", reasons)
	}
	mu.Unlock()
	if !ev.isClosed() {
		t.Error("stop left the subscription open")
	}

	ctx, cancel := context.WithCancel(context.Background())
	ev = newFakeEvents()
	stop, err = watch(ctx, ev, b, plan, offUID, func(r string) { t.Errorf("onBreak(%q) after the context ended", r) })
	if err != nil {
		t.Fatal(err)
	}
	ev.queue(batch{ns: []notification{note(t, msgDelTable, familyINet, TableName), note(t, msgNewGen, 0, "")}})
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for !ev.isClosed() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
}

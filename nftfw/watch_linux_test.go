//go:build linux

package nftfw

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/testnet"
	"github.com/sandgate/sandgate/nftfw/nfttest"
)

// TestNotificationNumbers checks the numbers watch.go writes out against
// the Linux headers.
func TestNotificationNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"NFT_MSG_NEWGEN", msgNewGen, unix.NFT_MSG_NEWGEN},
		{"NFT_MSG_TRACE", msgTrace, unix.NFT_MSG_TRACE},
		{"NFTA_TABLE_NAME", attrTable, unix.NFTA_TABLE_NAME},
		{"NFTA_CHAIN_TABLE", attrTable, unix.NFTA_CHAIN_TABLE},
		{"NFTA_RULE_TABLE", attrTable, unix.NFTA_RULE_TABLE},
		{"NFTA_SET_TABLE", attrTable, unix.NFTA_SET_TABLE},
		{"NFTA_SET_ELEM_LIST_TABLE", attrTable, unix.NFTA_SET_ELEM_LIST_TABLE},
		{"NFTA_OBJ_TABLE", attrTable, unix.NFTA_OBJ_TABLE},
		{"NFPROTO_INET", familyINet, unix.NFPROTO_INET},
		{"NFT_MSG_NEWTABLE", msgNewTable, unix.NFT_MSG_NEWTABLE},
		{"NFT_MSG_DELTABLE", msgDelTable, unix.NFT_MSG_DELTABLE},
		{"NFT_MSG_NEWRULE", msgNewRule, unix.NFT_MSG_NEWRULE},
		{"NFT_MSG_DELRULE", msgDelRule, unix.NFT_MSG_DELRULE},
		{"NFT_MSG_NEWSETELEM", msgNewSetElem, unix.NFT_MSG_NEWSETELEM},
		{"NFPROTO_IPV4", familyIP, unix.NFPROTO_IPV4},
		{"NFTA_TABLE_FLAGS", attrTableFl, unix.NFTA_TABLE_FLAGS},
		{"NFT_TABLE_F_DORMANT", tableDormant, unix.NFT_TABLE_F_DORMANT},
		{"NFT_TABLE_F_MASK (dormant, owner, persist)", tableDormant | tableOwner | tablePersist, unix.NFT_TABLE_F_MASK},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d here, %d in Linux", c.name, c.got, c.want)
		}
	}
}

// countingBackend counts the reads of the backend it wraps.
type countingBackend struct {
	Backend
	reads atomic.Int64
}

func (c *countingBackend) Read() (*Live, error) {
	c.reads.Add(1)
	return c.Backend.Read()
}

// TestWatchInNetns watches sandgate's table in a namespace of the test's
// own while it is (d) applied again unchanged, (c) loses a rule, (e) is
// made dormant, (a) is deleted and (b) goes with a flush of the ruleset:
// each break is reported
// within a second, the unchanged apply is looked at and not reported, and
// changes to another table are not even looked at.
func TestWatchInNetns(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	plan := mustPlan(t, proxyPorts, false)
	reasons := make(chan string, 10)
	onBreak := func(r string) { reasons <- r }

	// Before setup, there is nothing to watch.
	if _, err := Watch(context.Background(), ns.Path, plan, offUID, onBreak); !errors.Is(err, ErrDrift) {
		t.Fatalf("Watch before Apply: %v, want ErrDrift", err)
	}
	if err := Apply(ns.Path, plan, offUID); err != nil {
		t.Fatal(err)
	}

	// Watch, with the reads counted (Watch is this over Netlink).
	sub, err := subscribe(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	b := &countingBackend{Backend: &Netlink{NetNS: ns.Path}}
	stop, err := watch(context.Background(), sub, b, plan, offUID, onBreak)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	conn := func() (*nftables.Conn, func()) {
		t.Helper()
		c, done, err := dial(ns.Path)
		if err != nil {
			t.Fatal(err)
		}
		return c, done
	}
	flush := func(c *nftables.Conn, done func()) {
		t.Helper()
		defer done()
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// waitReads waits until the watch has read the table more than n times.
	waitReads := func(what string, n int64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for b.reads.Load() <= n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the watch did not look at the table", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	expectBreak := func(what string, change func(), want string) {
		t.Helper()
		start := time.Now()
		change()
		select {
		case r := <-reasons:
			if !strings.Contains(r, want) {
				t.Errorf("%s: onBreak(%q), want %q", what, r, want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s: noticed after %v, want within a second", what, d)
			}
		case <-time.After(time.Second):
			t.Fatalf("%s: not noticed within a second", what)
		}
	}
	expectQuiet := func(what string, change func()) {
		t.Helper()
		n := b.reads.Load()
		change()
		waitReads(what, n)
		select {
		case r := <-reasons:
			t.Errorf("%s: onBreak(%q), want no call", what, r)
		case <-time.After(time.Second):
		}
	}
	apply := func() {
		if err := Apply(ns.Path, plan, offUID); err != nil {
			t.Fatal(err)
		}
	}

	// Another table's changes are not looked at.
	n := b.reads.Load()
	c, done := conn()
	other := c.AddTable(&nftables.Table{Name: "other", Family: nftables.TableFamilyINet})
	c.AddChain(&nftables.Chain{Name: "c", Table: other})
	flush(c, done)
	time.Sleep(300 * time.Millisecond)
	if got := b.reads.Load(); got != n {
		t.Errorf("a change to another table read ours %d times", got-n)
	}

	// (d) The same plan applied again.
	expectQuiet("identical re-apply", apply)

	// (c) One rule deleted.
	expectBreak("rule deleted", func() {
		c, done := conn()
		tbl := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
		rules, err := c.GetRules(tbl, &nftables.Chain{Name: ChainName, Table: tbl})
		if err != nil || len(rules) == 0 {
			t.Fatalf("listing the output rules: %d, %v", len(rules), err)
		}
		if err := c.DelRule(rules[2]); err != nil { // after non-local and the redirected UDP
			t.Fatal(err)
		}
		flush(c, done)
	}, "rule sandgate-offline-block-local-udp is missing")
	expectQuiet("repair", apply)

	// (e) The table made dormant: nothing but its flags change.
	expectBreak("table made dormant", func() {
		if err := nfttest.SetTableFlags(ns.Path, TableName, unix.NFT_TABLE_F_DORMANT); err != nil {
			t.Fatal(err)
		}
	}, "sandgate's nftables table (inet sandgate) was made dormant: the kernel does not evaluate its rules")
	expectQuiet("repair of the dormant table", apply)
	// Made dormant and woken at once: the look may come too late, the
	// transaction is seen.
	expectBreak("made dormant and woken", func() {
		for _, f := range []uint32{unix.NFT_TABLE_F_DORMANT, 0} {
			if err := nfttest.SetTableFlags(ns.Path, TableName, f); err != nil {
				t.Fatal(err)
			}
		}
	}, "was made dormant")
	select {
	case r := <-reasons:
		t.Errorf("one dormant spell reported twice: onBreak(%q) again", r)
	case <-time.After(500 * time.Millisecond):
	}

	// (a) The table deleted.
	expectBreak("table deleted", func() {
		if err := Remove(ns.Path); err != nil {
			t.Fatal(err)
		}
	}, "sandgate's nftables table (inet sandgate) was deleted")
	expectQuiet("second repair", apply)

	// Deleted and put back at once: the look may come too late to see the
	// table missing, but the deleting transaction is seen.
	expectBreak("deleted and put back", func() {
		if err := Remove(ns.Path); err != nil {
			t.Fatal(err)
		}
		apply()
	}, "sandgate's nftables table (inet sandgate) was deleted")
	select {
	case r := <-reasons:
		t.Errorf("one deletion reported twice: onBreak(%q) again", r)
	case <-time.After(500 * time.Millisecond):
	}

	// (b) The whole ruleset flushed (nft flush ruleset).
	expectBreak("ruleset flushed", func() {
		c, done := conn()
		c.FlushRuleset()
		flush(c, done)
	}, "sandgate's nftables table (inet sandgate) was deleted")

	// Stopped: nothing more.
	stop()
	apply()
	if err := Remove(ns.Path); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reasons:
		t.Errorf("onBreak(%q) after stop", r)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestWatchReportsDeletion is the exported Watch on its own: a deleted
// table is reported, and the end of the context ends the watch.
func TestWatchReportsDeletion(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	plan := mustPlan(t, nil, true)
	if err := Apply(ns.Path, plan, offUID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reasons := make(chan string, 1)
	stop, err := Watch(ctx, ns.Path, plan, offUID, func(r string) { reasons <- r })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := Remove(ns.Path); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reasons:
		if !strings.Contains(r, "was deleted") {
			t.Errorf("onBreak(%q), want the table deleted", r)
		}
	case <-time.After(time.Second):
		t.Fatal("the deleted table was not noticed within a second")
	}
	cancel()
	stop()
}

// TestWatchStopSeesWhatCameBefore: a table deleted and put back just
// before stop is reported by the time stop returns, however quickly stop
// follows (the notifications are queued when the change commits).
func TestWatchStopSeesWhatCameBefore(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	plan := mustPlan(t, proxyPorts, false)
	if err := Apply(ns.Path, plan, offUID); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		var mu sync.Mutex
		var reasons []string
		stop, err := Watch(context.Background(), ns.Path, plan, offUID, func(r string) {
			mu.Lock()
			defer mu.Unlock()
			reasons = append(reasons, r)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := Remove(ns.Path); err != nil {
			t.Fatal(err)
		}
		if err := Apply(ns.Path, plan, offUID); err != nil {
			t.Fatal(err)
		}
		stop()
		mu.Lock()
		got := slices.Clone(reasons)
		mu.Unlock()
		if len(got) != 1 || !strings.Contains(got[0], "sandgate's nftables table (inet sandgate) was deleted") {
			t.Fatalf("round %d: onBreak calls %q by the end of stop, want the deletion once", i, got)
		}
	}
}

// TestEventsPendingAfterInterrupt: once interrupted, the subscription's
// receive returns at once, and pending still hands over what is queued,
// then errNoneQueued.
func TestEventsPendingAfterInterrupt(t *testing.T) {
	ns := testnet.NewAnonymous(t)
	sub, err := subscribe(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.close()
	sub.interrupt()
	start := time.Now()
	if _, err := sub.receive(); err == nil || time.Since(start) > time.Second {
		t.Fatalf("receive after interrupt: %v after %v, want an error at once", err, time.Since(start))
	}
	if _, err := sub.pending(); !errors.Is(err, errNoneQueued) {
		t.Fatalf("pending with nothing queued: %v", err)
	}
	if err := Apply(ns.Path, mustPlan(t, proxyPorts, false), offUID); err != nil {
		t.Fatal(err)
	}
	var got []notification
	for {
		n, err := sub.pending()
		if errors.Is(err, errNoneQueued) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n...)
	}
	var tx txn
	if !slices.ContainsFunc(got, touchesOurs) || !slices.ContainsFunc(got, func(n notification) bool { return n.typ == msgNewGen }) || tx.follow(got) != "" {
		t.Errorf("pending after an Apply: %d notifications, none of our table's or no end of the transaction, or a lapse", len(got))
	}
}

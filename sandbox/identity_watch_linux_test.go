//go:build linux

package sandbox

import (
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/nftfw/nfttest"
	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/setup"
)

// testWatch: sandgate's nftables rules are watched while identity runs of
// the offline user are live. A run whose rules are deleted, changed or
// made dormant under it is killed within a second and fails with the reason; an
// identical re-apply does not disturb it; and while the table is deleted
// and re-applied over and over during starts, no direct connection of any
// run gets through unnoticed.
func (w *idWorld) testWatch(t *testing.T) {
	plan, err := ruleplan.Build(setup.DefaultPorts(), false)
	if err != nil {
		t.Fatal(err)
	}
	apply := func() {
		t.Helper()
		if err := nftfw.Apply("", plan, uint32(w.offUID)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(apply) // the next tests want the rules back

	// (a) The table deleted (a proxy run), (b) one rule deleted (a run
	// without network).
	w.expectKilled(t, NetworkProxy, func() {
		if err := nftfw.Remove(""); err != nil {
			t.Fatal(err)
		}
	}, "sandgate's nftables table (inet sandgate) was deleted while the run was live")
	apply()
	w.expectKilled(t, NetworkNone, func() { deleteRule(t, 1) },
		"sandgate's nftables rules changed: ")
	apply()
	// (e) The table made dormant (a proxy run): every rule is still
	// there, but the kernel evaluates none of them.
	w.expectKilled(t, NetworkProxy, func() {
		if err := nfttest.SetTableFlags("", nftfw.TableName, unix.NFT_TABLE_F_DORMANT); err != nil {
			t.Fatal(err)
		}
	}, "sandgate's nftables table (inet sandgate) was made dormant: the kernel does not evaluate its rules while the run was live")
	apply()

	// (c) The same plan applied again while a run is live: no break.
	gatePath, open := w.gate()
	out, wait := background(t, w.spec("id-wait", gatePath))
	out.waitFor(t, "ports")
	for range 3 {
		apply()
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	open()
	if o := wait(); o.err != nil || o.res.ExitCode != 0 || len(o.notes) != 0 {
		t.Errorf("a run under an identical re-apply: %+v %v, messages %q", o.res, o.err, o.notes)
	}

	// (d) Runs start while the table is deleted and re-applied again and
	// again; each CMD keeps trying a direct connection.
	w.testWatchFlapping(t, plan, apply)
}

// expectKilled starts a run in network mode n whose CMD waits, makes
// change, and checks that the run is killed within a second, failing with
// want in its reason and the fix, after one message.
func (w *idWorld) expectKilled(t *testing.T, n Network, change func(), want string) {
	t.Helper()
	gatePath, open := w.gate() // never opened before the run ends
	defer open()
	spec := w.spec("id-wait", gatePath)
	spec.Network, spec.Gate = n, denyAllGate()
	out, wait := background(t, spec)
	out.waitFor(t, "ports")
	start := time.Now()
	change()
	done := make(chan outcome, 1)
	go func() { done <- wait() }()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(5 * time.Second):
		open()
		t.Fatalf("%v: the run went on after its rules changed", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("%v: the run ended %v after its rules changed, want within a second", n, d)
	}
	var ue *UnavailableError
	if !errors.As(o.err, &ue) || !strings.Contains(o.err.Error(), want) ||
		!strings.HasSuffix(o.err.Error(), "; run `sudo sandgate setup` to restore the rules") {
		t.Errorf("%v: err %v, want an UnavailableError saying %q and the fix", n, o.err, want)
	}
	if o.res.ExitCode != 128+9 || strings.Contains(o.stdout, "timeout") {
		t.Errorf("%v: CMD was not killed: %+v %q", n, o.res, o.stdout)
	}
	if len(o.notes) != 1 || !strings.HasPrefix(o.notes[0], "killed the run: ") || !strings.Contains(o.notes[0], want) {
		t.Errorf("%v: messages %q, want one saying the run was killed and why", n, o.notes)
	}
}

// deleteRule deletes the i-th rule of sandgate's output chain.
func deleteRule(t *testing.T, i int) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: nftfw.TableName, Family: nftables.TableFamilyINet}
	rules, err := c.GetRules(tbl, &nftables.Chain{Name: nftfw.ChainName, Table: tbl})
	if err != nil || len(rules) <= i {
		t.Fatalf("listing the output rules: %d, %v", len(rules), err)
	}
	if err := c.DelRule(rules[i]); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// testWatchFlapping: while another goroutine deletes and re-applies the
// table, runs whose CMD tries a direct connection to a listener of the
// test (once, or for a while), with and without the proxy, either refuse
// to start, are killed, or never connect: a run that ends well never
// connected, and every connection the listener saw belongs to a run that
// failed.
func (w *idWorld) testWatchFlapping(t *testing.T, plan ruleplan.Plan, apply func()) {
	var accepted atomic.Int64
	addr := serveUntilEnd(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		accepted.Add(1)
		c.Close()
	})
	stop := make(chan struct{})
	var flapper sync.WaitGroup
	flapper.Add(1)
	go func() {
		defer flapper.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := nftfw.Remove(""); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
			w.applying.Lock()
			err := nftfw.Apply("", plan, uint32(w.offUID))
			w.applying.Unlock()
			if err != nil {
				t.Error(err)
			}
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		}
	}()
	const runs = 30
	var ok, failed, cmdRan int
	for i := range runs {
		try := "direct-retry=" // keeps trying for a while
		if i%2 == 0 {
			try = "direct=" // one try, at once
		}
		spec := w.spec("id-net", try+addr)
		if i%4 >= 2 {
			spec.Network, spec.Gate = NetworkProxy, denyAllGate()
		}
		o := runNoCheck(spec)
		if strings.Contains(o.stdout, "direct "+addr+" ") {
			cmdRan++
		}
		connected := strings.Contains(o.stdout, "direct "+addr+" ok\n")
		switch {
		case o.err == nil && connected:
			t.Errorf("run %d made a direct connection and ended well: %+v %q", i, o.res, o.stdout)
		case o.err == nil:
			ok++
		case !errors.Is(o.err, ErrUnavailable):
			t.Errorf("run %d: %v, want ErrUnavailable or success", i, o.err)
		default:
			failed++
		}
	}
	close(stop)
	flapper.Wait()
	apply()
	t.Logf("%d runs: %d ended well, %d refused or killed; CMD ran in %d; %d direct connections accepted", runs, ok, failed, cmdRan, accepted.Load())
	if n := accepted.Load(); n > int64(failed) {
		t.Errorf("%d direct connections got through, but only %d runs failed", n, failed)
	}
	if cmdRan == 0 {
		t.Error("no CMD ever ran: the test proved nothing")
	}
}

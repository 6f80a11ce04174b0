//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sandgate/sandgate/proxy"
)

// idleBench is one idle-tunnel measurement: the proxy child it measures,
// the target the tunnels lead to, and the tunnels it holds open.
type idleBench struct {
	cfg        *config
	t          *table
	s          *score
	n          int    // tunnels to open
	name, held string // the names of its two rows
	tgt        *target
	pc         *proxyChild
	pid        int
	stacks     *os.File // -idle-stacks, or nil
	d          dialer
	conns      []*net.TCPConn
}

// idleOpened is how opening the idle tunnels went.
type idleOpened struct {
	errs            int64
	firstErr, limit string
	took            time.Duration
}

// idleFigures are the proxy child's memory and descriptors before the
// tunnels were opened, once they are open, and 3 seconds later.
type idleFigures struct {
	before, after, later          procMem
	fdsBefore, fdsAfter, fdsLater fdCounts
	afterErr                      error // reading the proxy's memory once the tunnels are open
}

// idleRows measures the proxy's RSS per idle tunnel with cfg.idleTunnels
// open. The proxy runs in a child process; the target and the clients run
// in this one (2 descriptors per tunnel here, at least 2 in the proxy).
func idleRows(cfg *config, t *table, s *score) {
	n := cfg.idleTunnels
	ib := &idleBench{cfg: cfg, t: t, s: s, n: n,
		name: fmt.Sprintf("RSS per idle tunnel (%d open)", n),
		held: fmt.Sprintf("%d tunnels held, no error", n),
	}
	if need := uint64(2*n + 64); noFileLimit() < need {
		t.note("LIMIT: this process needs about %d descriptors for %d tunnels (client + target ends) but RLIMIT_NOFILE is %d", need, n, noFileLimit())
	}
	var err error
	if ib.tgt, err = startTarget(); err != nil {
		ib.fail("cannot start target: %v", err)
		return
	}
	defer ib.tgt.close()
	if cfg.idleStacks != "" {
		if ib.stacks, err = os.Create(cfg.idleStacks); err != nil {
			ib.fail("%v", err)
			return
		}
		defer ib.stacks.Close()
	}
	var stacksW io.Writer
	if ib.stacks != nil {
		stacksW = ib.stacks
	}
	if ib.pc, err = startProxyChild("sandgate", ib.tgt.addr(), n+256, stacksW); err != nil {
		ib.fail("%v", err)
		return
	}
	defer ib.pc.stop()
	ib.pid = ib.pc.cmd.Process.Pid
	ib.d = dialer{proxy: ib.pc.addr, target: ib.tgt.addr(), timeout: 10 * time.Second}
	childNoFile := procNoFile(ib.pid)
	defer func() {
		for _, c := range ib.conns {
			c.Close()
		}
	}()

	var fig idleFigures
	if fig.before, fig.fdsBefore, err = ib.baseline(); err != nil {
		ib.fail("%v", err)
		return
	}
	op := ib.openAll()
	ib.settled(&fig)
	ib.dumpStacks()
	pingErrs, pingFirst := ib.pingAll()
	if fig.afterErr != nil {
		ib.fail("reading the proxy's RSS: %v (did it die? stderr: %s)", fig.afterErr, strings.TrimSpace(ib.pc.stderr.String()))
		return
	}
	ib.report(fig, op, childNoFile, pingErrs, pingFirst)
}

// fail marks both rows as not measured and says why.
func (ib *idleBench) fail(format string, a ...any) {
	ib.t.add(ib.name, "", "-", "", "", "≤ 16 KiB", ib.s.judge(false, false))
	ib.t.add(ib.held, "", "-", "", "", "all", ib.s.judge(false, false))
	ib.t.note("idle tunnels: "+format, a...)
}

// openHold opens one tunnel through the proxy to the target's hold server
// and waits for its greeting.
func (ib *idleBench) openHold() (*net.TCPConn, error) {
	c, err := ib.d.dial()
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(ib.d.timeout))
	var b [1]byte
	b[0] = opHold
	if _, err = c.Write(b[:]); err == nil {
		_, err = io.ReadFull(c, b[:])
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("tunnel to the hold server: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// baseline warms up the proxy's pools and code paths, then reads its memory
// and descriptors.
func (ib *idleBench) baseline() (procMem, fdCounts, error) {
	for i := 0; i < 16; i++ {
		c, err := ib.openHold()
		if err != nil {
			return procMem{}, fdCounts{}, fmt.Errorf("warm-up tunnel failed: %w", err)
		}
		c.Close()
	}
	time.Sleep(500 * time.Millisecond)
	before, err := readProcMem(ib.pid)
	if err != nil {
		return procMem{}, fdCounts{}, err
	}
	fds, _ := readFDs(ib.pid)
	return before, fds, nil
}

// openAll opens up to ib.n tunnels with cfg.idleConc openers, and keeps
// them in ib.conns. It stops after 50 errors or cfg.idleTimeout.
func (ib *idleBench) openAll() idleOpened {
	var (
		mu   sync.Mutex
		op   idleOpened
		next atomic.Int64
		errs atomic.Int64
		wg   sync.WaitGroup
	)
	ib.conns = make([]*net.TCPConn, 0, ib.n)
	start := time.Now()
	stopAt := start.Add(ib.cfg.idleTimeout)
	for w := 0; w < ib.cfg.idleConc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(ib.n) && errs.Load() < 50 && time.Now().Before(stopAt) {
				c, err := ib.openHold()
				mu.Lock()
				if err != nil {
					errs.Add(1)
					if op.firstErr == "" {
						op.firstErr = fmt.Sprintf("tunnel %d: %v", len(ib.conns)+1, err)
					}
					if op.limit == "" {
						op.limit = limitOf(err)
					}
				} else {
					ib.conns = append(ib.conns, c)
					ib.progress(start)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	op.took = time.Since(start)
	op.errs = errs.Load()
	return op
}

// progress prints, under -v, the proxy's figures every 500 tunnels.
func (ib *idleBench) progress(start time.Time) {
	if !ib.cfg.verbose || len(ib.conns)%500 != 0 {
		return
	}
	m, _ := readProcMem(ib.pid)
	f, _ := readFDs(ib.pid)
	fmt.Fprintf(os.Stderr, "  idle: %d tunnels open after %v; proxy VmRSS %d KiB, %v\n", len(ib.conns), time.Since(start).Round(time.Millisecond), m.RSS, f)
}

// settled reads the proxy's figures a second after the tunnels are open,
// and again 3 seconds later (do descriptors held briefly go away?).
func (ib *idleBench) settled(fig *idleFigures) {
	time.Sleep(time.Second) // let the proxy settle
	fig.after, fig.afterErr = readProcMem(ib.pid)
	fig.fdsAfter, _ = readFDs(ib.pid)
	time.Sleep(3 * time.Second)
	fig.fdsLater, _ = readFDs(ib.pid)
	fig.later, _ = readProcMem(ib.pid)
}

// dumpStacks, under -idle-stacks, has the proxy child write every
// goroutine's stack and exit.
func (ib *idleBench) dumpStacks() {
	if ib.stacks == nil {
		return
	}
	// SIGQUIT makes the Go runtime print every goroutine's stack and exit.
	_ = ib.pc.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-ib.pc.exited:
	case <-time.After(10 * time.Second):
	}
	ib.t.note("idle: the proxy child's goroutine stacks (SIGQUIT, taken with the 3 s later figures) are in %s; the tunnels were not pinged", ib.cfg.idleStacks)
}

// pingAll pings every open tunnel once to prove it still works end to end
// (not after a stack dump, which ended the proxy).
func (ib *idleBench) pingAll() (errs int, first string) {
	if ib.stacks != nil {
		return 0, ""
	}
	for _, c := range ib.conns {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b := [1]byte{'p'}
		_, err := c.Write(b[:])
		if err == nil {
			_, err = io.ReadFull(c, b[:])
		}
		if err != nil {
			errs++
			if first == "" {
				first = err.Error()
			}
		}
	}
	return errs, first
}

// report adds the two rows and the notes of the measurement.
func (ib *idleBench) report(fig idleFigures, op idleOpened, childNoFile int64, pingErrs int, pingFirst string) {
	t, n := ib.t, ib.n
	opened := len(ib.conns)
	perTunnel := float64(fig.after.RSS-fig.before.RSS) / float64(max(opened, 1))
	t.add(ib.name, "", roundKiB(perTunnel), "", "", "≤ 16 KiB", ib.s.judge(opened > 0, perTunnel <= 16))
	heldOK := opened == n && op.errs == 0 && pingErrs == 0
	t.add(ib.held, "", fmt.Sprintf("%d held", opened-pingErrs), "", "", "all", ib.s.judge(true, heldOK))
	maxNote := ""
	if n > proxy.DefaultMaxConns {
		maxNote = fmt.Sprintf(": the proxy's default %d would refuse more", proxy.DefaultMaxConns)
	}
	t.note("idle: proxy in a child process (pid %d, RLIMIT_NOFILE %d, MaxConns %d%s); target and clients in this process; %d tunnels opened in %v (%.0f /s, %d openers)",
		ib.pid, childNoFile, n+256, maxNote, opened, op.took.Round(time.Millisecond), float64(opened)/op.took.Seconds(), ib.cfg.idleConc)
	t.note("idle: proxy VmRSS %d KiB → %d KiB (RssAnon %d → %d KiB, threads %d → %d)", fig.before.RSS, fig.after.RSS, fig.before.Anon, fig.after.Anon, fig.before.Threads, fig.after.Threads)
	t.note("idle: proxy descriptors %v → %v (%.1f per tunnel)", fig.fdsBefore, fig.fdsAfter, float64(fig.fdsAfter.Total-fig.fdsBefore.Total)/float64(max(opened, 1)))
	t.note("idle: 3 s later, proxy VmRSS %d KiB, %v", fig.later.RSS, fig.fdsLater)
	if lim := childNoFile; lim > 0 && int64(fig.fdsAfter.Total) >= lim-16 {
		t.note("LIMIT HIT: the proxy process holds %d descriptors of its RLIMIT_NOFILE %d", fig.fdsAfter.Total, lim)
	}
	if op.errs > 0 {
		t.note("idle: %d tunnels failed to open (stopped after 50 errors or the %v limit); first: %s", op.errs, ib.cfg.idleTimeout, op.firstErr)
	}
	if opened < n && op.errs == 0 {
		t.note("idle: only %d of %d tunnels opened within %v", opened, n, ib.cfg.idleTimeout)
	}
	if op.limit != "" {
		t.note("LIMIT HIT opening idle tunnels: %s", op.limit)
	}
	if pingErrs > 0 {
		t.note("idle: %d open tunnels failed a 1-byte ping after the measurement; first: %s", pingErrs, pingFirst)
	}
	acceptNote(t, ib.tgt)
	if ib.stacks == nil {
		childLogNote(t, ib.pc)
	}
}

//go:build linux

package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Growth allowed between the figures after two waves (or before and after
// the runs): a few descriptors and goroutines come and go with the timing
// (a lookup, the stats goroutine); RSS is judged loosely, since Go returns
// freed memory to the system only slowly.
const (
	soakSlackFDs        = 16
	soakSlackGoroutines = 16
	soakSlackRSSKiB     = 8 << 10
	soakRSSGrowth       = 1.25
)

// benchSoak is `bench soak` (issue 9): waves of tunnels through a long-lived
// `sandgate proxy` under each descriptor limit, then sequential `sandgate
// run`s, each of whose CMD goes through its own proxy and then through the
// long-lived one.
func benchSoak(cfg *config, out io.Writer, s *score) {
	t := &table{
		title: fmt.Sprintf("soak (issue 9): %d waves of %d tunnels through `sandgate proxy` under each descriptor limit, then %d `sandgate run`s",
			cfg.soakWaves, cfg.soakTunnels, cfg.soakRuns),
		header: []string{"phase", "limit", "max_conns", "opened", "refused", "errors", "fds before/peak/after", "RSS MiB before/peak/after", "goroutines before/peak/after", "result"},
	}
	defer t.print(out)
	deadline := time.Now().Add(cfg.soakTimeout)
	sg, benchBin, env, cleanup, err := soakBinaries(cfg)
	defer cleanup()
	if err != nil {
		t.note("cannot prepare the binaries: %v", err)
		s.failed++
		return
	}
	tgt, err := startTarget()
	if err != nil {
		t.note("cannot start the target: %v", err)
		s.failed++
		return
	}
	defer tgt.close()
	t.note("target %s in this process; each `sandgate proxy --allow %s` runs with RLIMIT_NOFILE soft = hard = its limit (this process: %d); tunnels alternate HTTP CONNECT and SOCKS5, %d openers at once; each wave then sends 4 KiB both ways through every tunnel and closes them all",
		tgt.addr(), tgt.addr(), noFileLimit(), cfg.soakConc)
	var longLived *soakProxy
	for i, limit := range cfg.soakLimits {
		p, err := startSoakProxy(env, benchBin, sg, limit, tgt.addr())
		if err != nil {
			t.note("limit %d: %v", limit, err)
			s.failed++
			continue
		}
		soakWaves(cfg, t, s, p, tgt.addr(), deadline)
		if i == 0 {
			longLived = p
			defer p.stop()
		} else {
			p.stop()
		}
	}
	if longLived == nil || cfg.soakRuns == 0 {
		return
	}
	soakRuns(cfg, t, s, env, sg, benchBin, longLived, tgt.addr(), deadline)
}

// soakWaves runs the waves against one proxy and adds a row for each.
func soakWaves(cfg *config, t *table, s *score, p *soakProxy, target string, deadline time.Time) {
	base := p.snap()
	var firstAfter soakSnap
	for wave := 1; wave <= cfg.soakWaves; wave++ {
		if time.Now().After(deadline) {
			t.note("limit %d: stopped before wave %d: the soak's %v are up", p.limit, wave, cfg.soakTimeout)
			s.failed++
			return
		}
		before := p.snap()
		w := soakOpen(p, target, cfg.soakTunnels, cfg.soakConc)
		peak := p.snap()
		w.pingAll(cfg.soakConc)
		peak = peakOf(peak, p.snap())
		w.closeAll()
		after := p.settle(base)
		if wave == 1 {
			firstAfter = after
		}
		ok := before.err == nil && peak.err == nil && after.err == nil
		met := w.failed == 0 && w.pingFailed == 0 && w.opened > 0 && w.opened <= peak.maxConns &&
			w.opened+w.refused == cfg.soakTunnels && peak.fds.Total <= p.limit && !p.sawEMFILE() &&
			notGrown(base, after, firstAfter)
		t.add(fmt.Sprintf("wave %d", wave), strconv.Itoa(p.limit), strconv.Itoa(peak.maxConns),
			strconv.Itoa(w.opened), strconv.Itoa(w.refused), strconv.Itoa(w.failed+w.pingFailed),
			triple(before.fds.Total, peak.fds.Total, after.fds.Total), tripleMiB(before.rssKiB, peak.rssKiB, after.rssKiB),
			triple(before.goroutines, peak.goroutines, after.goroutines), failLabel(s.judge(ok, met)))
		t.note("limit %d wave %d: %d tunnels opened in %v; at the peak %v, %d splice pipes; after, %v",
			p.limit, wave, w.opened, w.took.Round(time.Millisecond), peak.fds, peak.pipes, after.fds)
		for _, e := range []error{before.err, peak.err, after.err} {
			if e != nil {
				t.note("limit %d wave %d: reading the proxy's figures: %v", p.limit, wave, e)
				break
			}
		}
		if w.firstErr != "" || w.pingFailed > 0 {
			t.note("limit %d wave %d: %d tunnels failed (first: %s), %d failed the 4 KiB echo", p.limit, wave, w.failed, w.firstErr, w.pingFailed)
		}
	}
	if p.sawEMFILE() {
		t.note("LIMIT HIT: the proxy under limit %d logged \"too many open files\"", p.limit)
	}
	if first := p.firstLines(); len(first) > 0 {
		t.note("the proxy under limit %d said: %s", p.limit, strings.Join(first, " | "))
	}
}

// notGrown reports whether after is back to base's descriptors and
// goroutines and, from the second wave on, no bigger than the first wave's
// after.
func notGrown(base, after, firstAfter soakSnap) bool {
	if after.fds.Total > base.fds.Total+soakSlackFDs || after.goroutines > base.goroutines+soakSlackGoroutines {
		return false
	}
	if firstAfter.rssKiB == 0 {
		return true
	}
	return after.fds.Total <= firstAfter.fds.Total+soakSlackFDs &&
		after.goroutines <= firstAfter.goroutines+soakSlackGoroutines &&
		float64(after.rssKiB) <= float64(firstAfter.rssKiB)*soakRSSGrowth+soakSlackRSSKiB
}

// soakRuns starts cfg.soakRuns `sandgate run`s one after another while p
// serves, and adds their row.
func soakRuns(cfg *config, t *table, s *score, env []string, sg, benchBin string, p *soakProxy, target string, deadline time.Time) {
	before := p.snap()
	peak := before
	failed, done := 0, 0
	first := ""
	// Sample the proxy while the runs go on, for the peak.
	stop, sampled := make(chan struct{}), make(chan soakSnap)
	go func() {
		pk := before
		for {
			select {
			case <-stop:
				sampled <- pk
				return
			case <-time.After(100 * time.Millisecond):
				pk = peakOf(pk, p.snap())
			}
		}
	}()
	start := time.Now()
	for i := 0; i < cfg.soakRuns && time.Now().Before(deadline); i++ {
		inner, socks := p.httpAddr, "-socks=false"
		if i%2 == 1 {
			inner, socks = p.socksAddr, "-socks=true"
		}
		argv := []string{sg, "run", "--allow", p.httpAddr, "--allow", p.socksAddr, "--",
			benchBin, "_chain", "-inner", inner, socks, "-target", target}
		code, stderr, _, err := runCmd(env, 30*time.Second, argv[0], argv[1:]...)
		done++
		if err != nil || code != 0 {
			failed++
			if first == "" {
				first = fmt.Sprintf("run %d: exit %d %v: %s", i+1, code, err, stderr)
			}
		}
	}
	took := time.Since(start)
	close(stop)
	peak = <-sampled
	after := p.settle(before)
	peak = peakOf(peak, after)
	ok := before.err == nil && after.err == nil
	met := failed == 0 && done == cfg.soakRuns && notGrown(before, after, before)
	t.add(fmt.Sprintf("%d runs", done), strconv.Itoa(p.limit), strconv.Itoa(after.maxConns), strconv.Itoa(done-failed), "-", strconv.Itoa(failed),
		triple(before.fds.Total, peak.fds.Total, after.fds.Total), tripleMiB(before.rssKiB, peak.rssKiB, after.rssKiB),
		triple(before.goroutines, peak.goroutines, after.goroutines), failLabel(s.judge(ok, met)))
	t.note("runs: `sandgate run --allow HTTP --allow SOCKS -- sandgate-bench _chain ...` (netns backend): CMD opens a CONNECT tunnel through the run's own proxy to the long-lived `sandgate proxy`, through it a tunnel to the target (HTTP CONNECT and SOCKS5 in turn) and exchanges a few bytes; %d runs in %v (%.1f ms each); the long-lived proxy's figures are before the first run, the largest of samples taken every 100 ms during the runs, and after", done, took.Round(time.Millisecond), float64(took.Milliseconds())/float64(max(done, 1)))
	if done < cfg.soakRuns {
		t.note("runs: stopped after %d of %d: the soak's %v are up", done, cfg.soakRuns, cfg.soakTimeout)
	}
	if first != "" {
		t.note("runs: %d failed; first: %s", failed, first)
	}
}

func triple(a, b, c int) string { return fmt.Sprintf("%d/%d/%d", a, b, c) }

func tripleMiB(a, b, c int64) string {
	return fmt.Sprintf("%.1f/%.1f/%.1f", float64(a)/1024, float64(b)/1024, float64(c)/1024)
}

// failLabel says FAIL where the soak found a problem.
func failLabel(r string) string {
	if r == "MISS" {
		return "FAIL"
	}
	return r
}

//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// score counts goals met and missed across the whole run.
type score struct {
	pass, miss, failed int
}

// judge returns PASS or MISS for a figure against a goal and counts it;
// ok false means the figure could not be measured.
func (s *score) judge(ok, met bool) string {
	switch {
	case !ok:
		s.failed++
		return "ERROR"
	case met:
		s.pass++
		return "PASS"
	}
	s.miss++
	return "MISS"
}

// table prints rows aligned in columns, followed by notes.
type table struct {
	title  string
	header []string
	rows   [][]string
	notes  []string
}

func (t *table) add(cols ...string) { t.rows = append(t.rows, cols) }

func (t *table) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

func (t *table) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s\n", t.title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	for _, n := range t.notes {
		fmt.Fprintf(w, "  - %s\n", n)
	}
}

// pairs collects interleaved direct and proxied results of one measurement.
type pairs struct {
	direct, proxied []result
}

// agg sums results: bytes (or ops) per second over all rounds, and whether
// every result was error-free. Failed results still count their figures.
func agg(rs []result, perOp bool) (rate float64, ok bool, firstErr, limit string) {
	var num, secs float64
	ok = len(rs) > 0
	for _, r := range rs {
		if !r.ok() {
			ok = false
			if firstErr == "" {
				firstErr = r.FirstErr
			}
			if limit == "" {
				limit = r.Limit
			}
		}
		if perOp {
			num += float64(r.Ops)
		} else {
			num += float64(r.Bytes)
		}
		secs += r.Seconds
	}
	if secs > 0 {
		rate = num / secs
	}
	return rate, ok, firstErr, limit
}

// roundRatios returns the per-round proxied/direct ratios, sorted.
func (p pairs) roundRatios(perOp bool) []float64 {
	var out []float64
	for i := range min(len(p.direct), len(p.proxied)) {
		d, _, _, _ := agg(p.direct[i:i+1], perOp)
		q, _, _, _ := agg(p.proxied[i:i+1], perOp)
		if d > 0 {
			out = append(out, q/d)
		}
	}
	sort.Float64s(out)
	return out
}

// ratioRow adds one direct-vs-proxied row judged against goal (a minimum ratio).
func ratioRow(t *table, s *score, name string, p pairs, perOp bool, goal float64) {
	d, dok, derr, dlim := agg(p.direct, perOp)
	q, qok, qerr, qlim := agg(p.proxied, perOp)
	format := fmtGBps
	if perOp {
		format = fmtRate
	}
	rr := p.roundRatios(perOp)
	ratio := median(rr)
	ok := dok && qok && d > 0 && q > 0 && len(rr) > 0
	spread := ""
	if len(rr) > 1 {
		spread = fmt.Sprintf("%.2f–%.2f", rr[0], rr[len(rr)-1])
	}
	t.add(name, format(d), format(q), fmt.Sprintf("%.2f×", ratio), spread, fmt.Sprintf("≥ %.1f×", goal), s.judge(ok, ratio >= goal))
	for _, e := range []struct{ side, err, lim string }{{"direct", derr, dlim}, {"sandgate", qerr, qlim}} {
		if e.lim != "" {
			t.note("LIMIT HIT in %s %s: %s", name, e.side, e.lim)
		}
		if e.err != "" {
			t.note("%s %s failed: %s", name, e.side, e.err)
		}
	}
}

func fmtGBps(v float64) string { return fmt.Sprintf("%.2f GB/s", v/1e9) }

func fmtRate(v float64) string { return fmt.Sprintf("%.0f /s", v) }

// durStats summarises a list of durations.
type durStats struct {
	n                   int
	mean, median, minim time.Duration
}

func stats(ds []time.Duration) durStats {
	if len(ds) == 0 {
		return durStats{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return durStats{n: len(s), mean: sum / time.Duration(len(s)), median: med, minim: s[0]}
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func fmtRatio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

func roundKiB(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.1f KiB", v)
}

// median of sorted values (0 for none).
func median(v []float64) float64 {
	switch n := len(v); {
	case n == 0:
		return 0
	case n%2 == 1:
		return v[n/2]
	default:
		return (v[n/2-1] + v[n/2]) / 2
	}
}

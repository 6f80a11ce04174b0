//go:build linux

package main

import (
	"fmt"
	"io"
	"time"
)

// The paired measurements of `bench proxy` and `bench run`: bulk over 1 and
// over 4 tunnels, and fresh tunnels per second, each measured in
// interleaved direct / proxied pairs.

// pairOrder alternates which side of a pair goes first (false: direct).
func pairOrder(round int) []bool {
	if round%2 == 1 {
		return []bool{true, false}
	}
	return []bool{false, true}
}

// pairedRounds runs the interleaved pairs: cfg.rounds rounds of bulk over 1
// and over 4 tunnels, then cfg.freshRounds rounds of fresh tunnels with a
// 100 ms pause after each measurement so that closing sockets settle. one
// measures one side of one pair into p: tunnels is 1 or 4 for bulk, 0 for
// fresh tunnels.
func pairedRounds(cfg *config, one func(p *pairs, proxied bool, tunnels int)) (b1, b4, fr pairs) {
	for round := 0; round < cfg.rounds; round++ {
		for _, proxied := range pairOrder(round) {
			one(&b1, proxied, 1)
		}
		for _, proxied := range pairOrder(round) {
			one(&b4, proxied, 4)
		}
	}
	for round := 0; round < cfg.freshRounds; round++ {
		for _, proxied := range pairOrder(round) {
			one(&fr, proxied, 0)
			time.Sleep(100 * time.Millisecond) // let closing sockets settle
		}
	}
	return b1, b4, fr
}

// pairedRows adds the three ratio rows of the paired measurements to t,
// judged against their goals in s.
func pairedRows(cfg *config, t *table, s *score, b1, b4, fr pairs) {
	ratioRow(t, s, "bulk, 1 tunnel", b1, false, 0.6)
	ratioRow(t, s, "bulk, 4 tunnels", b4, false, 0.6)
	ratioRow(t, s, fmt.Sprintf("fresh tunnels, %d clients", cfg.freshClients), fr, true, 0.7)
}

// add records r as the direct or the proxied side of a pair, printing it
// first under -v.
func (p *pairs) add(cfg *config, out io.Writer, proxied bool, r result) {
	verbose(cfg, out, r)
	if proxied {
		p.proxied = append(p.proxied, r)
	} else {
		p.direct = append(p.direct, r)
	}
}

// verbose prints one measurement's result under -v.
func verbose(cfg *config, out io.Writer, r result) {
	if !cfg.verbose {
		return
	}
	fmt.Fprintf(out, "  %-6s %-22s bytes=%d ops=%d %.3fs errors=%d %s\n", r.Test, r.Via, r.Bytes, r.Ops, r.Seconds, r.Errors, r.FirstErr)
}

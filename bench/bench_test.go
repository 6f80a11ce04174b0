//go:build linux

package main

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "512MiB": 512 << 20, "2GiB": 2 << 30, "64K": 64 << 10} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5GiB", "GiB", "99999999999999GiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}

func TestStatsAndMedian(t *testing.T) {
	ms := time.Millisecond
	st := stats([]time.Duration{4 * ms, 1 * ms, 3 * ms, 2 * ms})
	if st.n != 4 || st.minim != ms || st.median != 2500*time.Microsecond || st.mean != 2500*time.Microsecond {
		t.Errorf("stats = %+v", st)
	}
	if m := median([]float64{0.2, 0.4, 0.9}); m != 0.4 {
		t.Errorf("median = %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("median(nil) = %v", m)
	}
}

func TestRatioUsesPairs(t *testing.T) {
	p := pairs{
		direct:  []result{{Bytes: 100, Seconds: 1}, {Bytes: 100, Seconds: 1}, {Bytes: 1000, Seconds: 1}},
		proxied: []result{{Bytes: 50, Seconds: 1}, {Bytes: 60, Seconds: 1}, {Bytes: 100, Seconds: 1}},
	}
	rr := p.roundRatios(false)
	if len(rr) != 3 || median(rr) != 0.5 {
		t.Errorf("round ratios %v, median %v; want median 0.5", rr, median(rr))
	}
}

func TestLimitOf(t *testing.T) {
	if l := limitOf(fmt.Errorf("accept: %w", syscall.EMFILE)); l == "" {
		t.Error("EMFILE not recognised as a limit")
	}
	if l := limitOf(errors.New("connection refused")); l != "" {
		t.Errorf("ordinary error reported as limit %q", l)
	}
}

func TestIntList(t *testing.T) {
	var l intList
	if err := l.Set("20000, 4096"); err != nil || len(l) != 2 || l[0] != 20000 || l[1] != 4096 || l.String() != "20000,4096" {
		t.Errorf("Set = %v, %v (%q)", l, err, l.String())
	}
	for _, in := range []string{"", "0", "1,x", "-5"} {
		if err := l.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}

func TestNotGrown(t *testing.T) {
	snap := func(fds, gor int, rss int64) soakSnap {
		return soakSnap{fds: fdCounts{Total: fds}, goroutines: gor, rssKiB: rss}
	}
	base := snap(11, 5, 8<<10)
	first := snap(11, 5, 90<<10)
	tests := []struct {
		name  string
		after soakSnap
		first soakSnap
		want  bool
	}{
		{"back to base after the first wave", snap(12, 6, 90<<10), soakSnap{}, true},
		{"descriptors left behind", snap(11+soakSlackFDs+1, 5, 90<<10), soakSnap{}, false},
		{"goroutines left behind", snap(11, 5+soakSlackGoroutines+1, 90<<10), soakSnap{}, false},
		{"a later wave like the first", snap(11, 5, 94<<10), first, true},
		{"a later wave that grew in RSS", snap(11, 5, 130<<10), first, false},
	}
	for _, tt := range tests {
		if got := notGrown(base, tt.after, tt.first); got != tt.want {
			t.Errorf("%s: notGrown = %v, want %v", tt.name, got, tt.want)
		}
	}
	if failLabel("MISS") != "FAIL" || failLabel("PASS") != "PASS" {
		t.Error("failLabel")
	}
}

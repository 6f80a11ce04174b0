package proxy

import "testing"

func TestPlanFDs(t *testing.T) {
	tests := []struct {
		name               string
		limit, open, want  int
		lowered            bool
		minConns, maxConns int
	}{
		{"no limit known", 0, 0, 8192, false, 8192, 8192},
		{"20000 fits the default", 20000, 10, 8192, false, 8192, 8192},
		{"4096 does not", 4096, 10, 8192, true, 1500, 1800},
		{"256", 256, 8, 8192, true, 20, 60},
		{"tiny limit keeps one slot", 64, 8, 8192, true, 1, 1},
		{"a small max_conns is kept", 4096, 10, 100, false, 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planFDs(tt.limit, tt.open, tt.want)
			if p.lowered != tt.lowered || p.conns < tt.minConns || p.conns > tt.maxConns {
				t.Fatalf("plan %+v, want lowered %v and %d..%d connections", p, tt.lowered, tt.minConns, tt.maxConns)
			}
			if p.pipes != pipesFor(p.conns) || p.lookups != lookupsFor(p.conns) || p.refusals != refusalsFor(p.conns) {
				t.Errorf("pools not sized for %d connections: %+v", p.conns, p)
			}
			if tt.limit == 0 || p.conns == 1 {
				return
			}
			// Everything the plan allows fits, and one more slot would not
			// (when it was lowered).
			if c := fdCost(tt.open, p.conns); c > tt.limit {
				t.Errorf("plan can hold %d descriptors, over the limit %d", c, tt.limit)
			}
			if p.lowered && fdCost(tt.open, p.conns+1) <= tt.limit {
				t.Errorf("plan lowered to %d though %d fit", p.conns, p.conns+1)
			}
		})
	}
	// The cost counts each holder.
	c := fdCost(5, 800)
	want := 5 + fdMargin + 2*800 + 2*100 + 3*16 + 32
	if c != want {
		t.Errorf("fdCost(5, 800) = %d, want %d", c, want)
	}
}

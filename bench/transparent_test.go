//go:build linux

package main

import (
	"slices"
	"testing"
)

func TestRotateGivesEachPathTheFirstTurn(t *testing.T) {
	ps := []path{pathDirect, pathConnect, pathTransparent}
	firsts := map[path]bool{}
	for round := range 3 {
		r := rotate(ps, round)
		firsts[r[0]] = true
		sorted := slices.Clone(r)
		slices.Sort(sorted)
		if !slices.Equal(sorted, ps) {
			t.Errorf("rotate(%d) = %v, not a permutation", round, r)
		}
	}
	if len(firsts) != 3 || !slices.Equal(rotate(ps, 3), ps) {
		t.Errorf("first turns %v", firsts)
	}
}

func TestClientArgs(t *testing.T) {
	w := &transparentWorld{connectTo: "127.0.0.1:3128"}
	if got := w.clientArgs(pathConnect, 80, []string{"-test", "fresh"}); !slices.Equal(got, []string{"_client", "-proxy", "http://127.0.0.1:3128", "-target", "127.0.0.1:80", "-test", "fresh"}) {
		t.Errorf("CONNECT args %q", got)
	}
	if got := w.clientArgs(pathTransparent, 80, nil); !slices.Equal(got, []string{"_client", "-target", "198.18.0.1:80"}) {
		t.Errorf("transparent args %q", got)
	}
}

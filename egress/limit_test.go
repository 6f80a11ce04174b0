package egress

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedResolver blocks every lookup until release is closed and records how
// many ran at once.
type gatedResolver struct {
	release     chan struct{}
	now, most   atomic.Int32
	started     chan struct{}
	lookupsSeen atomic.Int32
}

func (g *gatedResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	n := g.now.Add(1)
	defer g.now.Add(-1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	g.lookupsSeen.Add(1)
	g.started <- struct{}{}
	<-g.release
	return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
}

func TestLimitLookups(t *testing.T) {
	g := &gatedResolver{release: make(chan struct{}), started: make(chan struct{}, 100)}
	r := LimitLookups(g, 3)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.LookupNetIP(context.Background(), "ip", "a.test.")
			errs <- err
		}()
	}
	for i := 0; i < 3; i++ {
		select {
		case <-g.started:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d lookups started", i)
		}
	}
	// A fourth waits; one whose context ends while waiting gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.LookupNetIP(ctx, "ip", "b.test."); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting lookup with an expired context: %v", err)
	}
	if n := g.lookupsSeen.Load(); n != 3 {
		t.Errorf("%d lookups reached the resolver while 3 were running, want 3", n)
	}
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("lookup: %v", err)
		}
	}
	if m := g.most.Load(); m != 3 {
		t.Errorf("%d lookups ran at once, want at most (and at some point) 3", m)
	}
	if g.lookupsSeen.Load() != 20 {
		t.Errorf("%d of 20 lookups ran", g.lookupsSeen.Load())
	}
}

package decide

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gated is a Decider that counts its questions and answers only when
// release is closed (or its context ends).
type gated struct {
	n       atomic.Int32
	release chan struct{}
	ans     Answer
	ended   chan error // receives ctx.Err() when an ask ends by its context
}

func (g *gated) Decide(ctx context.Context, q Question) (Answer, error) {
	g.n.Add(1)
	select {
	case <-g.release:
		return g.ans, nil
	case <-ctx.Done():
		if g.ended != nil {
			g.ended <- ctx.Err()
		}
		return Answer{}, ctx.Err()
	}
}

func waitAsked(t *testing.T, n func() int32, want int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n() < want {
		if time.Now().After(deadline) {
			t.Fatalf("asked %d times, want %d", n(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCoalesces(t *testing.T) {
	var g Group
	d := &gated{release: make(chan struct{}), ans: Answer{Allow: true, Scope: ScopeRun}}
	const callers = 8
	var wg sync.WaitGroup
	answers := make(chan Answer, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ans, err := g.Do(context.Background(), d, testQuestion)
			if err != nil {
				t.Error(err)
			}
			answers <- ans
		}()
	}
	waitAsked(t, d.n.Load, 1)
	time.Sleep(50 * time.Millisecond) // let the others join
	close(d.release)
	wg.Wait()
	close(answers)
	for a := range answers {
		if a != d.ans {
			t.Errorf("a caller got %+v, want %+v", a, d.ans)
		}
	}
	if n := d.n.Load(); n != 1 {
		t.Fatalf("asked %d times, want 1", n)
	}
	// Once answered, the same question is asked anew.
	if _, err := g.Do(context.Background(), d, testQuestion); err != nil || d.n.Load() != 2 {
		t.Fatalf("second round: %v after %d asks", err, d.n.Load())
	}
}

func TestGroupDifferentQuestionsAskSeparately(t *testing.T) {
	var g Group
	d := &gated{release: make(chan struct{}), ans: Answer{}}
	close(d.release)
	qs := []Question{testQuestion, {Run: "run-7", Protocol: "connect", Host: "notlisted.example", Port: 80},
		{Run: "run-7", Protocol: "http", Host: "notlisted.example", Port: 443, Method: "GET", Path: "/"}}
	for _, q := range qs {
		if _, err := g.Do(context.Background(), d, q); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.n.Load(); n != int32(len(qs)) {
		t.Fatalf("asked %d times, want %d", n, len(qs))
	}
}

func TestGroupCallerLeavingKeepsTheAskForOthers(t *testing.T) {
	var g Group
	d := &gated{release: make(chan struct{}), ans: Answer{Allow: true}, ended: make(chan error, 1)}
	first, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := g.Do(first, d, testQuestion)
		firstErr <- err
	}()
	waitAsked(t, d.n.Load, 1)
	second := make(chan Answer, 1)
	go func() {
		ans, _ := g.Do(context.Background(), d, testQuestion)
		second <- ans
	}()
	time.Sleep(50 * time.Millisecond)
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the first caller got %v, want context.Canceled", err)
	}
	select {
	case err := <-d.ended:
		t.Fatalf("the ask ended (%v) while a caller still waited", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(d.release)
	if ans := <-second; !ans.Allow {
		t.Fatalf("the second caller got %+v, want the allow", ans)
	}
}

func TestGroupLastCallerLeavingCancelsTheAsk(t *testing.T) {
	var g Group
	d := &gated{release: make(chan struct{}), ended: make(chan error, 1)}
	defer close(d.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := g.Do(ctx, d, testQuestion)
		done <- err
	}()
	waitAsked(t, d.n.Load, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	select {
	case err := <-d.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the ask ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ask went on after its last caller left")
	}
}

func TestGroupPanicIsADeny(t *testing.T) {
	var g Group
	d := Func(func(context.Context, Question) (Answer, error) { panic("boom") })
	for i := 0; i < 2; i++ { // the group is usable after a panic
		ans, err := g.Do(context.Background(), d, testQuestion)
		if err == nil || ans.Allow || !strings.Contains(err.Error(), "panicked: boom") {
			t.Fatalf("Do = %+v, %v; want a panic error and no allow", ans, err)
		}
	}
}

func TestGroupDeadlineKept(t *testing.T) {
	var g Group
	d := &gated{release: make(chan struct{}), ended: make(chan error, 1)}
	defer close(d.release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Do(ctx, d, testQuestion); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want DeadlineExceeded", err)
	}
}

func TestRequestContext(t *testing.T) {
	p, m, path := RequestFrom(context.Background())
	if p != "" || m != "" || path != "" {
		t.Fatalf("empty context gave %q %q %q", p, m, path)
	}
	ctx := WithRequest(context.Background(), "http", "GET", "/x")
	if p, m, path := RequestFrom(ctx); p != "http" || m != "GET" || path != "/x" {
		t.Fatalf("RequestFrom = %q %q %q", p, m, path)
	}
}

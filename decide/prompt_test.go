package decide

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPromptKeys(t *testing.T) {
	cases := []struct {
		keys string
		want Answer
		err  string
		says string // in the output after the question
	}{
		{"o", Answer{Allow: true, Scope: ScopeOnce}, "", "allowed once"},
		{"O", Answer{Allow: true, Scope: ScopeOnce}, "", "allowed once"},
		{"r", Answer{Allow: true, Scope: ScopeRun}, "", "allowed for the rest of the run"},
		{"d", Answer{}, "", "refused"},
		{"n", Answer{Scope: ScopeRun}, "", "refused for the rest of the run (not asked again)"},
		{"N", Answer{Scope: ScopeRun}, "", "refused for the rest of the run"},
		{"D", Answer{}, "", "refused\r\n"},
		{"\x03", Answer{}, "", "refused"},
		{"\x04", Answer{}, "", "refused"},
		{"\x1b", Answer{}, "", "refused"},
		{"\r\n xyz?r", Answer{Allow: true, Scope: ScopeRun}, "", "allowed for the rest"},
		{"do", Answer{}, "", "refused"}, // the first answering key counts
		{"", Answer{}, "terminal closed", "refused"},
		{"yes\n", Answer{}, "terminal closed", "refused"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		p := &Prompt{In: strings.NewReader(c.keys), Out: &out}
		ans, err := p.Decide(context.Background(), testQuestion)
		if c.err == "" && (err != nil || ans != c.want) {
			t.Errorf("keys %q: %+v, %v; want %+v", c.keys, ans, err, c.want)
		}
		if c.err != "" && (err == nil || ans.Allow || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("keys %q: %+v, %v; want an error containing %q", c.keys, ans, err, c.err)
		}
		o := out.String()
		if !strings.Contains(o, "CMD wants notlisted.example:443 by connect. Allow [o]nce, for this [r]un, [d]eny, or [n]ever (deny for this run)? (deny in 30s)") ||
			!strings.Contains(o, "notlisted.example:443 "+c.says) {
			t.Errorf("keys %q: output %q", c.keys, o)
		}
	}
}

func TestPromptShowsEscaped(t *testing.T) {
	var out bytes.Buffer
	p := &Prompt{In: strings.NewReader("d"), Out: &out}
	q := Question{Protocol: "http", Host: "notlisted.example", Port: 80, Method: "GET", Path: "/\x1b[2J\x07" + strings.Repeat("a", 300)}
	if _, err := p.Decide(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	o := out.String()
	if strings.ContainsAny(o, "\x1b\x07") {
		t.Fatalf("control characters from the request reached the terminal: %q", o)
	}
	if !strings.Contains(o, `(GET /\x1b[2J\a`) || !strings.Contains(o, "a…) by http") {
		t.Fatalf("output %q does not show the escaped, shortened path", o)
	}
}

func TestPromptTimeout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	var out bytes.Buffer
	p := &Prompt{In: r, Out: &out, Timeout: 100 * time.Millisecond}
	t0 := time.Now()
	ans, err := p.Decide(context.Background(), testQuestion)
	if err == nil || ans.Allow || !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Fatalf("Decide = %+v, %v; want a timeout", ans, err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
	if !strings.Contains(out.String(), "refused: no answer within 100ms") {
		t.Fatalf("output %q", out.String())
	}
	// The deadline is cleared: a later question reads a later key.
	p.Timeout = 5 * time.Second
	go w.Write([]byte("o"))
	if ans, err := p.Decide(context.Background(), testQuestion); err != nil || !ans.Allow {
		t.Fatalf("after a timeout: %+v, %v", ans, err)
	}
}

func TestPromptContextEnds(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	p := &Prompt{In: r, Out: &bytes.Buffer{}, Timeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	ans, err := p.Decide(ctx, testQuestion)
	if err == nil || ans.Allow || !errors.Is(err, context.Canceled) {
		t.Fatalf("Decide = %+v, %v; want context.Canceled", ans, err)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestPromptOneAtATimeAndRunMemory(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	out := &lockedBuffer{}
	var active, most int
	var mu sync.Mutex
	p := &Prompt{In: r, Out: out, Timeout: 10 * time.Second, Begin: func() (func(), error) {
		mu.Lock()
		active++
		most = max(most, active)
		mu.Unlock()
		return func() { mu.Lock(); active--; mu.Unlock() }, nil
	}}
	other := Question{Run: "run-7", Protocol: "connect", Host: "other.example", Port: 443}
	qs := []Question{testQuestion, other, {Run: "run-7", Protocol: "socks5", Host: "notlisted.example", Port: 443}}
	answers := make([]Answer, len(qs))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the first question is answered "run" before the others ask
		defer wg.Done()
		answers[0], _ = p.Decide(context.Background(), qs[0])
	}()
	waitFor(t, func() bool { return strings.Count(out.String(), "Allow [o]nce") == 1 })
	w.Write([]byte("r"))
	wg.Wait()
	for i := 1; i < len(qs); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], _ = p.Decide(context.Background(), qs[i])
		}()
	}
	// Only other.example is asked: notlisted.example:443 is allowed for the run.
	waitFor(t, func() bool { return strings.Count(out.String(), "Allow [o]nce") == 2 })
	w.Write([]byte("d"))
	wg.Wait()
	if strings.Count(out.String(), "Allow [o]nce") != 2 {
		t.Fatalf("asked more than twice: %q", out.String())
	}
	want := []Answer{{Allow: true, Scope: ScopeRun}, {}, {Allow: true, Scope: ScopeRun}}
	for i := range want {
		if answers[i] != want[i] {
			t.Errorf("question %d: %+v, want %+v", i, answers[i], want[i])
		}
	}
	if most != 1 {
		t.Fatalf("%d prompts at once", most)
	}
}

// TestPromptNeverForTheRun: "n" denies host:port for the rest of the run:
// a client retrying in a loop is refused at once, without the question
// being shown again and without waiting behind a question that is shown,
// and another port of the host is still asked.
func TestPromptNeverForTheRun(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	out := &lockedBuffer{}
	p := &Prompt{In: r, Out: out, Timeout: 10 * time.Second}
	done := make(chan Answer, 1)
	go func() { a, _ := p.Decide(context.Background(), testQuestion); done <- a }()
	waitFor(t, func() bool { return strings.Count(out.String(), "[n]ever") == 1 })
	w.Write([]byte("n"))
	if a := <-done; a.Allow {
		t.Fatalf("n allowed: %+v", a)
	}
	// Another question is shown and left open; retries of the denied
	// destination, by any protocol, do not wait for it and are not shown.
	otherPort := testQuestion
	otherPort.Port = 8443
	go func() { a, _ := p.Decide(context.Background(), otherPort); done <- a }()
	waitFor(t, func() bool { return strings.Count(out.String(), "[n]ever") == 2 })
	for _, proto := range []string{"connect", "connect", "socks5", "http"} {
		q := testQuestion
		q.Protocol = proto
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		a, err := p.Decide(ctx, q)
		cancel()
		if err != nil || a.Allow {
			t.Fatalf("retry by %s: %+v, %v; want a deny at once", proto, a, err)
		}
	}
	if n := strings.Count(out.String(), "[n]ever"); n != 2 {
		t.Fatalf("the question was shown %d times, want 2 (the first, and the other port): %q", n, out.String())
	}
	w.Write([]byte("o"))
	if a := <-done; !a.Allow {
		t.Fatalf("the other port: %+v, want allowed once", a)
	}
	if !strings.Contains(out.String(), "CMD wants notlisted.example:8443 by connect") {
		t.Fatalf("the other port was not asked: %q", out.String())
	}
}

func TestPromptWho(t *testing.T) {
	var out bytes.Buffer
	p := &Prompt{In: strings.NewReader("d"), Out: &out, Who: "a client"}
	if _, err := p.Decide(context.Background(), testQuestion); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "sandgate: a client wants notlisted.example:443 by connect.") {
		t.Fatalf("output %q does not name the client", out.String())
	}
}

func TestPromptBeginFails(t *testing.T) {
	p := &Prompt{In: strings.NewReader("o"), Out: &bytes.Buffer{},
		Begin: func() (func(), error) { return nil, errors.New("no terminal") }}
	if ans, err := p.Decide(context.Background(), testQuestion); err == nil || ans.Allow {
		t.Fatalf("Decide = %+v, %v; want an error", ans, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

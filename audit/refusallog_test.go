package audit

import (
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestRefusalLogRateLimit(t *testing.T) {
	var b strings.Builder
	c := &fakeClock{t: time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)}
	l := NewRefusalLog(&b, 3, c.now)
	deny := Event{Proto: "connect", Client: "127.0.0.1:5000", Host: "evil.test", Port: 443, Decision: "deny", Reason: "not-allowed"}
	l.Record(Event{Proto: "connect", Host: "ok.test", Port: 443, Decision: "allow", Reason: "allowed"})
	for i := 0; i < 10; i++ {
		l.Record(deny)
		c.t = c.t.Add(10 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("within one second: %d lines, want 3: %q", len(lines), b.String())
	}
	want := "sandgate: refused connect evil.test:443 from 127.0.0.1:5000: not on the allow list (not-allowed)"
	if lines[0] != want {
		t.Errorf("line %q, want %q", lines[0], want)
	}
	// The next window: first the summary of the 7 not shown, then the line.
	c.t = c.t.Add(time.Second)
	l.Record(deny)
	lines = strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[3], "sandgate: … 7 more refusals not shown") || lines[4] != want {
		t.Fatalf("after the window: %q", lines)
	}
	// Flush with nothing suppressed writes nothing; with one, the singular.
	l.Flush()
	for i := 0; i < 3; i++ { // the window holds one line already: two more fit
		l.Record(deny)
	}
	l.Flush()
	lines = strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[7], "sandgate: … 1 more refusal not shown") {
		t.Fatalf("flush: %q", lines)
	}
	l.Flush()
	if n := strings.Count(b.String(), "\n"); n != 8 {
		t.Errorf("second Flush wrote something: %d lines", n)
	}
}

func TestRefusalTextEscapes(t *testing.T) {
	got := RefusalText(Event{Proto: "http", Host: "evil\x1b[2J.test", Port: 80, Decision: "deny", Reason: "invalid-host"})
	if strings.ContainsRune(got, 0x1b) || !strings.Contains(got, `evil\x1b[2J.test:80`) {
		t.Errorf("RefusalText = %q", got)
	}
	got = RefusalText(Event{Proto: "dns", Host: "x.test", Decision: "deny", Reason: "not-allowed"})
	if got != "sandgate: refused dns x.test: not on the allow list (not-allowed)" {
		t.Errorf("RefusalText without port = %q", got)
	}
}

package audit

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// RefusalLog is a Sink that writes one human line per refusal to w
// (`sandgate proxy` uses stderr), at most PerSecond lines in any one-second
// window; the refusals beyond that are counted and reported as one
// "… K more refusals" line when the window ends (at the next refusal or at
// Flush). Allowed events are ignored.
type RefusalLog struct {
	w         io.Writer
	perSecond int
	now       func() time.Time

	mu          sync.Mutex
	windowStart time.Time
	written     int // lines written in the current window
	suppressed  int // refusals not written in the current window
}

// NewRefusalLog returns a RefusalLog writing to w at most perSecond lines a
// second (at least 1). now is the clock; nil means time.Now.
func NewRefusalLog(w io.Writer, perSecond int, now func() time.Time) *RefusalLog {
	if perSecond < 1 {
		perSecond = 1
	}
	if now == nil {
		now = time.Now
	}
	return &RefusalLog{w: w, perSecond: perSecond, now: now}
}

// Record writes e's line when it is a refusal and the rate allows it.
func (l *RefusalLog) Record(e Event) {
	if e.Decision != "deny" || e.Reason == ReasonAuthChallenge {
		// A 407 to a request without credentials is how a client learns
		// it must send them; whether it does comes later.
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	if l.windowStart.IsZero() || t.Sub(l.windowStart) >= time.Second || t.Before(l.windowStart) {
		l.flushLocked()
		l.windowStart, l.written = t, 0
	}
	if l.written >= l.perSecond {
		l.suppressed++
		return
	}
	l.written++
	fmt.Fprintln(l.w, RefusalText(e))
}

// Flush writes the pending "… K more refusals" line, if any.
func (l *RefusalLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *RefusalLog) flushLocked() {
	if l.suppressed == 0 {
		return
	}
	word := "refusals"
	if l.suppressed == 1 {
		word = "refusal"
	}
	fmt.Fprintf(l.w, "sandgate: … %d more %s not shown (at most %d lines a second; --audit FILE records every one)\n", l.suppressed, word, l.perSecond)
	l.suppressed = 0
}

// RefusalText is the one-line description of a refusal event, for
// example `sandgate: refused connect evil.test:443 from 127.0.0.1:50000:
// not on the allow list (not-allowed)`. Names and texts that came from a
// client are printed with their non-printable characters escaped.
func RefusalText(e Event) string {
	var b strings.Builder
	b.WriteString("sandgate: refused ")
	if e.Proto != "" {
		b.WriteString(printable(e.Proto) + " ")
	}
	target := printable(e.Host)
	if e.Port != 0 {
		target = net.JoinHostPort(target, strconv.Itoa(int(e.Port)))
	}
	b.WriteString(target)
	if e.Client != "" {
		b.WriteString(" from " + printable(e.Client))
	}
	fmt.Fprintf(&b, ": %s (%s)", ReasonPhrase(e.Reason), printable(e.Reason))
	return b.String()
}

// printable escapes the characters of s that a terminal could act on.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

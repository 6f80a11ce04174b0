package decide

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode"
)

// DefaultPromptTimeout bounds one question to a person (Prompt) when its
// Timeout is zero: longer than a service's, since someone has to read it.
const DefaultPromptTimeout = 30 * time.Second

// maxShown bounds each field of a question as shown in a prompt.
const maxShown = 200

// Prompt is a Decider that asks a person: it writes one question at a time
// to Out and reads a single key from In: o (allow once), r (allow for the
// rest of the run), d (deny this time) or n ("never": deny for the rest of
// the run); Ctrl-C, Ctrl-D and Escape deny this time too, and other keys
// are ignored. No answer within Timeout, an error or the end of In is an
// error (a deny). Questions wait for the prompt before them; a destination
// (host:port) already allowed or denied for the run by an earlier answer is
// not asked again (a denied one is answered at once, without waiting for
// the prompt), so a client that retries in a loop is not shown the
// question again and again.
//
// When In has a SetReadDeadline method (an *os.File of a terminal, a pipe)
// the timeout and the caller's context interrupt a read; otherwise reads
// are plain (for tests with in-memory readers).
type Prompt struct {
	In      io.Reader
	Out     io.Writer
	Timeout time.Duration // 0 means DefaultPromptTimeout
	// Who names the program that wants the destination in the question:
	// "" means "CMD" (sandgate run); sandgate proxy says "a client".
	Who string
	// Begin, when set, runs before each question is shown (taking the
	// terminal from CMD, dropping keys typed before the question, switching
	// to single keys) and returns what undoes it after the answer. An
	// error is a deny.
	Begin func() (end func(), err error)

	once   sync.Once
	turn   chan struct{} // one question at a time
	mu     sync.Mutex
	forRun map[string]bool // "host:port" allowed (true) or denied (false) for the run by an answer
}

type deadliner interface {
	SetReadDeadline(time.Time) error
}

// Decide shows q and waits for a key.
func (p *Prompt) Decide(ctx context.Context, q Question) (Answer, error) {
	p.once.Do(func() { p.turn = make(chan struct{}, 1) })
	if allow, known := p.forTheRun(q); known && !allow {
		return Answer{Scope: ScopeRun}, nil
	}
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("waiting for the prompt before this one: %w", ctx.Err())
	}
	defer func() { <-p.turn }()
	if allow, known := p.forTheRun(q); known {
		return Answer{Allow: allow, Scope: ScopeRun}, nil
	}
	if p.Begin != nil {
		end, err := p.Begin()
		if err != nil {
			return Answer{}, fmt.Errorf("preparing the terminal: %w", err)
		}
		defer end()
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultPromptTimeout
	}
	fmt.Fprintf(p.Out, "\r\nsandgate: %s. Allow [o]nce, for this [r]un, [d]eny, or [n]ever (deny for this run)? (deny in %v) ", p.describe(q), timeout)
	ans, err := p.readKey(ctx, timeout)
	switch {
	case err != nil:
		fmt.Fprintf(p.Out, "\r\nsandgate: %s refused: %v\r\n", show(q.String()), err)
	case ans.Allow && ans.Scope == ScopeRun:
		p.remember(q, true)
		fmt.Fprintf(p.Out, "r\r\nsandgate: %s allowed for the rest of the run\r\n", show(q.String()))
	case ans.Allow:
		fmt.Fprintf(p.Out, "o\r\nsandgate: %s allowed once\r\n", show(q.String()))
	case ans.Scope == ScopeRun:
		p.remember(q, false)
		fmt.Fprintf(p.Out, "n\r\nsandgate: %s refused for the rest of the run (not asked again)\r\n", show(q.String()))
	default:
		fmt.Fprintf(p.Out, "d\r\nsandgate: %s refused\r\n", show(q.String()))
	}
	return ans, err
}

// forTheRun says whether an earlier answer allowed (allow) or denied q's
// host:port for the rest of the run; known is false when none did.
func (p *Prompt) forTheRun(q Question) (allow, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	allow, known = p.forRun[q.String()]
	return allow, known
}

// remember records an answer for the rest of the run.
func (p *Prompt) remember(q Question, allow bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.forRun == nil {
		p.forRun = make(map[string]bool)
	}
	p.forRun[q.String()] = allow
}

// readKey reads keys until one answers, the deadline passes or ctx ends.
func (p *Prompt) readKey(ctx context.Context, timeout time.Duration) (Answer, error) {
	dl, hasDL := p.In.(deadliner)
	if hasDL {
		if err := dl.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			hasDL = false
		} else {
			defer dl.SetReadDeadline(time.Time{})
			stop := context.AfterFunc(ctx, func() { _ = dl.SetReadDeadline(time.Unix(1, 0)) })
			defer stop()
		}
	}
	buf := make([]byte, 64)
	for {
		n, err := p.In.Read(buf)
		for _, b := range buf[:n] {
			if ans, ok := keyAnswer(b); ok {
				return ans, nil
			}
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return Answer{}, fmt.Errorf("the connection ended before an answer: %w", ctx.Err())
		}
		if hasDL && errors.Is(err, os.ErrDeadlineExceeded) {
			return Answer{}, fmt.Errorf("no answer within %v", timeout)
		}
		if errors.Is(err, io.EOF) {
			return Answer{}, errors.New("the terminal closed before an answer")
		}
		return Answer{}, fmt.Errorf("reading the terminal: %w", err)
	}
}

// keyAnswer maps a key to an answer; ok is false for keys that do not
// answer. A deny of scope run ("never") is remembered by the Prompt only:
// a Decider's deny is never remembered by the gate.
func keyAnswer(b byte) (Answer, bool) {
	switch b {
	case 'o', 'O':
		return Answer{Allow: true, Scope: ScopeOnce}, true
	case 'r', 'R':
		return Answer{Allow: true, Scope: ScopeRun}, true
	case 'n', 'N':
		return Answer{Scope: ScopeRun}, true
	case 'd', 'D', 3 /* Ctrl-C */, 4 /* Ctrl-D */, 27 /* Escape */ :
		return Answer{}, true
	}
	return Answer{}, false
}

// describe is the question in words, with everything CMD chose escaped.
func (p *Prompt) describe(q Question) string {
	who := p.Who
	if who == "" {
		who = "CMD"
	}
	s := who + " wants " + show(q.String())
	if q.Method != "" || q.Path != "" {
		s += " (" + show(q.Method) + " " + show(q.Path) + ")"
	}
	if q.Protocol != "" {
		s += " by " + show(q.Protocol)
	}
	return s
}

// show makes s safe to print on a terminal: non-printable characters are
// escaped and it is cut to maxShown bytes.
func show(s string) string {
	cut := false
	if len(s) > maxShown {
		s, cut = s[:maxShown], true
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r > unicode.MaxASCII {
			q := strconv.QuoteToASCII(s)
			s = q[1 : len(q)-1]
			break
		}
	}
	if cut {
		s += "…"
	}
	return s
}

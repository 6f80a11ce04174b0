package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode"

	"github.com/spf13/pflag"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/control"
	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/sandbox"
)

// askTerminalPath is the terminal --ask prompts on: sandgate's own
// controlling terminal (a variable for tests, which use a pty).
var askTerminalPath = "/dev/tty"

// decideFlags are --decider, --decider-timeout and --ask of `run` and
// `proxy`: who decides, at run time, about a destination that is merely
// not on the allow list (see docs/decider.md).
type decideFlags struct {
	url     string
	timeout time.Duration
	ask     bool
	inRun   bool // set by apply: the prompt names CMD, not "a client" (sandgate proxy)

	hold     *sync.Mutex      // the terminal relay's hold, for --ask in a run
	closer   io.Closer        // the terminal opened for --ask
	failures *deciderFailures // the stderr lines of a run's decider failures
}

func (d *decideFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&d.url, "decider", "", "ask the service at URL (http://127.0.0.1:PORT/PATH or unix:/path) about each destination not on the allow list; errors and timeouts deny (docs/decider.md)")
	fs.DurationVar(&d.timeout, "decider-timeout", 0, "how long --decider (default 10s) or --ask (default 30s) may take to answer before the connection is refused")
	fs.BoolVar(&d.ask, "ask", false, "ask on sandgate's terminal about each destination not on the allow list: allow once (o), for this run (r), deny (d), or never (n: deny for this run)")
}

// decider returns the Decider the flags name, or nil when they name none.
// A bad URL, --ask without a terminal, or both flags are usage errors.
func (d *decideFlags) decider() (decide.Decider, error) {
	if d.url != "" && d.ask {
		return nil, usageErr("--ask and --decider cannot be used together: choose who decides (the terminal or the service)")
	}
	if d.timeout < 0 {
		return nil, usageErr("--decider-timeout %v: must not be negative", d.timeout)
	}
	switch {
	case d.url != "":
		c, err := decide.NewClient(d.url, d.timeout)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("--decider: %w", err)}
		}
		return c, nil
	case d.ask:
		d.hold = &sync.Mutex{}
		p, closer, err := openAskTerminal(d.timeout, d.hold) // 0: decide.DefaultPromptTimeout
		if err != nil {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("--ask needs a terminal to ask on (%w); without one, name a program that decides with --decider URL, or allow the destinations with --allow", err)}
		}
		d.closer = closer
		if !d.inRun {
			p.Who = "a client" // sandgate proxy: no CMD, any client of the proxy
		}
		return p, nil
	}
	return nil, nil
}

// applyGate gives g a live policy (unless it has one) and an Asker for the
// flags' decider, with runID (the run's id; "" for a random one, as
// control.NewRunID makes) in each question. It does nothing when no
// decider is named.
func (d *decideFlags) applyGate(g *egress.Gate, runID string) error {
	dec, err := d.decider()
	if err != nil || dec == nil {
		return err
	}
	if runID == "" {
		id, err := control.NewRunID()
		if err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		runID = id
	}
	if g.Live == nil {
		g.Live = egress.NewLive(g.Policy)
	}
	g.Ask = &egress.Asker{Decider: dec, Run: runID}
	return nil
}

// apply sets spec's audit sink and its gate for the flags (see applyGate) with the id
// runID returns (controlFlags.runID: the one id of the run), reports each
// decider failure on stderr as it happens (rate-limited like the refusal
// lines of `sandgate proxy`; the audit has every one, reason
// decider-failed), and pauses the terminal relay during an --ask prompt.
func (d *decideFlags) apply(spec *sandbox.Spec, sink audit.Sink, runID func() (string, error)) error {
	spec.Audit = sink
	if d.url == "" && !d.ask {
		return nil
	}
	if spec.Network != sandbox.NetworkProxy || spec.Gate == nil {
		return usageErr("--decider and --ask decide about proxied connections: they need --network proxy")
	}
	id, err := runID()
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	d.inRun = true
	if err := d.applyGate(spec.Gate, id); err != nil {
		return err
	}
	d.failures = newDeciderFailures(os.Stderr, refusalLinesPerSecond, nil)
	spec.Audit = audit.Multi(spec.Audit, d.failures)
	spec.InputHold = d.hold
	return nil
}

// close prints the count of decider failures not shown and releases the
// terminal opened for --ask.
func (d *decideFlags) close() {
	if d.failures != nil {
		d.failures.Flush()
	}
	if d.closer != nil {
		d.closer.Close()
		d.closer = nil
	}
}

// deciderFailures is an audit sink that prints one line per decider
// failure (reason decider-failed), at most perSecond a second; the rest are
// counted in one line when the window ends.
type deciderFailures struct {
	w         io.Writer
	perSecond int
	now       func() time.Time

	mu         sync.Mutex
	start      time.Time
	written    int
	suppressed int
}

func newDeciderFailures(w io.Writer, perSecond int, now func() time.Time) *deciderFailures {
	if now == nil {
		now = time.Now
	}
	return &deciderFailures{w: w, perSecond: max(perSecond, 1), now: now}
}

// Record prints e when it is a decider failure and the rate allows it.
func (f *deciderFailures) Record(e audit.Event) {
	if e.Reason != egress.ReasonDeciderFailed {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.now()
	if f.start.IsZero() || t.Sub(f.start) >= time.Second || t.Before(f.start) {
		f.flushLocked()
		f.start, f.written = t, 0
	}
	if f.written >= f.perSecond {
		f.suppressed++
		return
	}
	f.written++
	text := e.Text
	if text == "" {
		text = e.Host + " is refused"
	}
	fmt.Fprintf(f.w, "sandgate: %s (decider-failed: a decider that fails denies)\n", printableText(text))
}

// Flush prints the pending count of lines not shown, if any.
func (f *deciderFailures) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushLocked()
}

func (f *deciderFailures) flushLocked() {
	if f.suppressed > 0 {
		fmt.Fprintf(f.w, "sandgate: … %d more decider failures not shown (at most %d lines a second; --audit FILE records every one)\n", f.suppressed, f.perSecond)
		f.suppressed = 0
	}
}

// printableText escapes what a terminal could act on.
func printableText(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			q := strconv.QuoteToASCII(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

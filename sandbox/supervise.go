package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/sandgate/sandgate/proxy"
)

// shutdownGrace bounds how long a run waits, after the sandbox is gone, for
// the proxy's connections and CMD's last output.
const shutdownGrace = 2 * time.Second

// A run of any backend goes through the same three steps, each a method of
// supervisor: start (the sandbox is created and entered), watch (the proxy
// is served once the sandbox is up; signals, cancellation, a failing proxy
// and the sandbox's end are handled as they come) and finish (exit status,
// proxy shutdown, messages). A backend supplies only what differs: how the
// sandbox is created and entered, how it is signalled and killed, and how
// its exit status is read.

// sandboxProcess is one sandbox as its backend runs it.
type sandboxProcess interface {
	// start creates the sandbox and starts its first process on io. The
	// sandbox then reports, exactly once, on the returned channel whether
	// CMD started (start itself need not wait for that).
	start(io streams) (<-chan startReport, error)
	// done is closed once CMD's exit status is known and every process
	// of the sandbox is gone, but for its first when that one waits for
	// release (see releaser).
	done() <-chan struct{}
	// signals are the signals the supervisor catches while the sandbox
	// runs; forward passes one on.
	signals() []os.Signal
	forward(os.Signal)
	// kill ends every process of the sandbox.
	kill()
	// exitStatus reads CMD's exit status once done is closed.
	exitStatus() (int, error)
	// finish releases what the sandbox held for the run, waiting at most
	// grace for CMD's last output to be relayed.
	finish(grace time.Duration)
}

// releaser is a sandboxProcess that holds on to something of the sandbox
// past its end (the Linux init, which waits to exit until it is
// released); release, the last step of a run, lets it go.
type releaser interface{ release() }

// streams are CMD's standard streams.
type streams struct {
	in       io.Reader
	out, err io.Writer
	hold     *sync.Mutex // Spec.InputHold
}

// startReport is how a sandbox's start went.
type startReport struct {
	started   bool           // CMD runs (or ran)
	listeners []net.Listener // the proxy's (HTTP, SOCKS5), when the sandbox made them
	files     []*os.File     // the transparent path's sockets, when the sandbox made them
	// transparentOff says why the sandbox could not make the transparent
	// path it was asked for (it runs without it).
	transparentOff string
	execMsg        string // why CMD could not be executed (started is set: exit 126 or 127)
	err            error  // the sandbox failed; it is killed
	// notStarted marks an err from before CMD could have run that lets
	// BackendAuto try the next backend.
	notStarted bool
}

// runPlan is what a run needs besides the Spec and its sandbox: what its
// proxy serves with, and the watch over its enforcement.
type runPlan struct {
	// listeners are the proxy's (HTTP, SOCKS5) when they exist before the
	// sandbox (identity, Windows); nil: the sandbox reports them (netns).
	// The supervisor closes them in every case.
	listeners []net.Listener
	creds     *proxy.Credentials // nil: no authentication
	// broken says, at most once, that the kernel no longer enforces what
	// the run relies on (the identity backend's firewall rules changed
	// under it); nil: nothing watches. The sandbox is then not started,
	// or killed at once, and the run fails with that error, after a
	// message saying so.
	broken <-chan *UnavailableError
	// transparent is the run's transparent path (nil: none). It is
	// served with the proxy's server once CMD runs, and stopped with
	// the proxy, in every case.
	transparent transparentPath
}

// transparentPath is the sandgate side of a run's transparent path
// (package sandbox's transparent_linux.go).
type transparentPath interface {
	// serve serves the sandbox's transparent sockets (it owns files) with
	// srv, the run's proxy server: one gate and audit pipeline for both.
	serve(srv *proxy.Server, files []*os.File) error
	// stop ends what serve started (while srv shuts down, which closes
	// the transparent listeners), records what the sandbox's rules
	// refused, and removes the run's files.
	stop()
}

// supervisor is the state of one run.
type supervisor struct {
	spec   Spec
	sb     sandboxProcess
	plan   runPlan
	logf   func(string, ...any)
	notify func(string)
	io     streams

	reports <-chan startReport       // nil once the report is in
	exited  <-chan struct{}          // nil once the sandbox is gone
	ctxDone <-chan struct{}          // nil once handled
	failed  <-chan struct{}          // the proxy pair's failure; nil unless serving
	broken  <-chan *UnavailableError // the enforcement watch; nil once it spoke
	sigs    chan os.Signal
	pair    *proxy.Pair

	started    bool   // CMD runs or ran
	killed     bool   // kill was called
	execMsg    string // why CMD could not be executed
	notStarted bool
	res        Result
	err        error // the first failure of sandgate's own
}

// supervise runs spec in sb: start, watch, finish.
func supervise(ctx context.Context, spec Spec, sb sandboxProcess, plan runPlan) (Result, error) {
	s := &supervisor{spec: spec, sb: sb, plan: plan, logf: spec.Logf, notify: spec.notifier(), io: specStreams(spec)}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if err := s.start(); err != nil {
		return Result{}, err
	}
	s.watch(ctx)
	return s.finish()
}

// start catches the backend's signals and starts the sandbox, unless its
// enforcement broke already.
func (s *supervisor) start() error {
	select {
	case ue := <-s.plan.broken:
		s.abandonPlan()
		return ue
	default:
	}
	s.broken = s.plan.broken
	s.sigs = make(chan os.Signal, 16)
	signal.Notify(s.sigs, s.sb.signals()...)
	reports, err := s.sb.start(s.io)
	if err != nil {
		signal.Stop(s.sigs)
		s.abandonPlan()
		return err
	}
	s.reports, s.exited = reports, s.sb.done()
	return nil
}

// abandonPlan releases the plan of a sandbox that never started.
func (s *supervisor) abandonPlan() {
	closeListeners(s.plan.listeners)
	if s.plan.transparent != nil {
		s.plan.transparent.stop()
	}
}

// specStreams are the Spec's streams, the process's own where unset.
func specStreams(spec Spec) streams {
	st := streams{in: spec.Stdin, out: spec.Stdout, err: spec.Stderr, hold: spec.InputHold}
	if st.in == nil {
		st.in = os.Stdin
	}
	if st.out == nil {
		st.out = os.Stdout
	}
	if st.err == nil {
		st.err = os.Stderr
	}
	return st
}

// watch handles what happens while the sandbox runs, until it has both
// reported and ended.
func (s *supervisor) watch(ctx context.Context) {
	s.ctxDone = ctx.Done()
	for s.reports != nil || s.exited != nil {
		select {
		case r := <-s.reports:
			s.reports = nil
			s.onReport(r)
		case <-s.exited:
			s.exited = nil
		case sig := <-s.sigs:
			s.sb.forward(sig)
		case <-s.ctxDone:
			s.ctxDone = nil
			s.fail(ctx.Err())
			s.kill()
		case ue := <-s.broken:
			s.broken = nil
			s.notify("killed the run: " + ue.Reason)
			s.fail(ue)
			s.kill()
		case <-s.failed:
			s.failed = nil
			s.res.ProxyErr = s.pair.Err()
			s.logf("sandbox: %v; closing the sandbox's proxy listeners", s.res.ProxyErr)
		}
	}
}

// onReport takes the sandbox's report: the proxy is served once CMD runs.
func (s *supervisor) onReport(r startReport) {
	s.started = r.started
	s.execMsg = r.execMsg
	if r.err != nil {
		s.notStarted = r.notStarted
		closeListeners(r.listeners)
		closeFiles(r.files)
		s.fail(r.err)
		s.kill()
		return
	}
	lns := r.listeners
	if lns == nil {
		lns = s.plan.listeners
	}
	// CMD that could not be executed (exit 126 or 127) never uses the
	// proxy: the init made no listeners for it.
	if !r.started || r.execMsg != "" || s.spec.Network != NetworkProxy {
		closeListeners(lns)
		closeFiles(r.files)
		return
	}
	if len(lns) != 2 {
		closeListeners(lns)
		closeFiles(r.files)
		s.fail(fmt.Errorf("the proxy has %d listeners, want 2", len(lns)))
		s.kill()
		return
	}
	srv := proxy.New(proxy.Options{Gate: s.spec.Gate, Audit: s.spec.Audit, Credentials: s.plan.creds, Limits: s.spec.ProxyLimits, Logf: s.spec.Logf,
		Authority: s.spec.Authority, UpstreamRoots: s.spec.UpstreamRoots, Secrets: s.spec.Secrets})
	s.pair = srv.ServePair(lns[0], lns[1])
	s.failed = s.pair.Failed()
	if s.plan.transparent != nil && r.transparentOff != "" {
		s.notify("running without the transparent path (only programs that use the proxy variables can connect): " + r.transparentOff)
		closeFiles(r.files)
	} else if s.plan.transparent != nil {
		if err := s.plan.transparent.serve(srv, r.files); err != nil {
			s.fail(err)
			s.kill()
		}
	} else {
		closeFiles(r.files)
	}
}

// fail records err unless an earlier failure is already recorded.
func (s *supervisor) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// kill kills the sandbox, once.
func (s *supervisor) kill() {
	if !s.killed {
		s.killed = true
		s.sb.kill()
	}
}

// finish collects the outcome once the sandbox is gone: CMD's exit status,
// the last of its output, the proxy's end, sandgate's messages.
func (s *supervisor) finish() (Result, error) {
	defer stopSignals(s.sigs)
	code, err := s.sb.exitStatus()
	s.res.ExitCode = code
	if err != nil {
		s.fail(err)
	}
	if s.err == nil && !s.started {
		s.err = fmt.Errorf("the sandbox init exited (status %d) before starting the command", code)
	}
	s.sb.finish(shutdownGrace)
	// The transparent path stops alongside the proxy's shutdown (which
	// closes its listeners).
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if s.plan.transparent != nil {
			s.plan.transparent.stop()
		}
	}()
	if s.pair != nil {
		_ = s.pair.Shutdown(shutdownGrace)
	} else {
		closeListeners(s.plan.listeners) // never served (closing twice is harmless)
	}
	<-stopped
	if r, ok := s.sb.(releaser); ok {
		r.release()
	}
	if s.execMsg != "" {
		s.notify(s.execMsg) // after CMD's last output and the terminal's restore
	}
	if s.err != nil {
		if s.notStarted && !s.started {
			return s.res, &notStartedError{s.err}
		}
		return s.res, s.err
	}
	return s.res, nil
}

// stopSignals stops catching the sandbox's signals for the run, without
// waiting for it: os/signal passes each signal to a thread of its own and
// back (0.1-0.4 ms for five), which the end of every run would otherwise
// wait for. A signal that comes meanwhile is caught and dropped, as one
// during the run's end is.
func stopSignals(c chan os.Signal) { go signal.Stop(c) }

// closeListeners closes every listener of ls.
func closeListeners(ls []net.Listener) {
	for _, ln := range ls {
		ln.Close()
	}
}

// closeFiles closes every file of fs.
func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/proxy"
)

// fakeSandbox is a sandboxProcess that runs nothing: the test says what it
// reports, when it ends and with what status.
type fakeSandbox struct {
	report   startReport
	startErr error
	code     int
	exitErr  error

	mu       sync.Mutex
	end      chan struct{} // closed when the sandbox ends (by the test or by kill)
	ended    bool
	kills    int
	finished bool
	started  bool // start was called
	io       streams
}

func newFake(r startReport, code int) *fakeSandbox {
	return &fakeSandbox{report: r, code: code, end: make(chan struct{})}
}

func (f *fakeSandbox) start(st streams) (<-chan startReport, error) {
	if f.startErr != nil {
		return nil, f.startErr
	}
	f.started, f.io = true, st
	ch := make(chan startReport, 1)
	ch <- f.report
	return ch, nil
}

func (f *fakeSandbox) done() <-chan struct{} { return f.end }
func (f *fakeSandbox) signals() []os.Signal  { return nil }
func (f *fakeSandbox) forward(os.Signal)     {}

// exit ends the sandbox as CMD's exit would.
func (f *fakeSandbox) exit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ended {
		f.ended = true
		close(f.end)
	}
}

func (f *fakeSandbox) kill() {
	f.mu.Lock()
	f.kills++
	f.mu.Unlock()
	f.exit()
}

func (f *fakeSandbox) exitStatus() (int, error) { return f.code, f.exitErr }
func (f *fakeSandbox) finish(time.Duration)     { f.finished = true }

// loopbackPair listens on two loopback ports.
func loopbackPair(t *testing.T) []net.Listener {
	t.Helper()
	var lns []net.Listener
	for i := 0; i < 2; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns = append(lns, ln)
	}
	return lns
}

// accepts reports whether something accepts connections at addr.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestSuperviseExitStatus(t *testing.T) {
	f := newFake(startReport{started: true}, 3)
	f.exit()
	res, err := supervise(context.Background(), Spec{Network: NetworkNone}, f, runPlan{})
	if err != nil || res.ExitCode != 3 || res.ProxyErr != nil {
		t.Fatalf("supervise = %+v, %v; want exit 3", res, err)
	}
	if !f.finished || f.kills != 0 {
		t.Errorf("finished %v, kills %d; want finished, never killed", f.finished, f.kills)
	}
	if f.io.in != os.Stdin || f.io.out != os.Stdout || f.io.err != os.Stderr {
		t.Error("unset streams are not the process's own")
	}
}

// TestSuperviseServesPlannedListeners: listeners made before the sandbox
// are served once it has started, and closed at the end.
func TestSuperviseServesPlannedListeners(t *testing.T) {
	lns := loopbackPair(t)
	f := newFake(startReport{started: true}, 0)
	done := make(chan error, 1)
	go func() {
		_, err := supervise(context.Background(), Spec{Network: NetworkProxy, Stdin: strings.NewReader("")}, f, runPlan{listeners: lns})
		done <- err
	}()
	c, err := net.DialTimeout("tcp", lns[1].Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{5, 1, 0})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{5, 0} {
		t.Errorf("the SOCKS5 listener does not serve SOCKS5: %v %v", sel, err)
	}
	c.Close()
	f.exit()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, ln := range lns {
		if accepts(ln.Addr().String()) {
			t.Errorf("listener %s still accepts after the run", ln.Addr())
		}
	}
}

// TestSuperviseProxyFailure: a listener that stops serving during the run
// is reported in Result.ProxyErr and logged; the run goes on.
func TestSuperviseProxyFailure(t *testing.T) {
	lns := loopbackPair(t)
	f := newFake(startReport{started: true, listeners: lns}, 0)
	var mu sync.Mutex
	var logged []string
	spec := Spec{Network: NetworkProxy, Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, format)
	}}
	done := make(chan Result, 1)
	go func() {
		res, _ := supervise(context.Background(), spec, f, runPlan{})
		done <- res
	}()
	time.Sleep(50 * time.Millisecond)
	lns[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for accepts(lns[1].Addr().String()) {
		if time.Now().After(deadline) {
			t.Fatal("the SOCKS5 listener was not closed after the HTTP one failed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.exit()
	res := <-done
	if res.ProxyErr == nil || !strings.HasPrefix(res.ProxyErr.Error(), "HTTP proxy: ") || !errors.Is(res.ProxyErr, net.ErrClosed) {
		t.Errorf("ProxyErr = %v, want the HTTP listener's failure", res.ProxyErr)
	}
	mu.Lock()
	defer mu.Unlock()
	// The probe connections above are logged by the proxy itself
	// ("proxy: SOCKS client ..."); the supervisor's own lines are the
	// sandbox's, and exactly one of them must be about the failure.
	var own []string
	for _, l := range logged {
		if strings.HasPrefix(l, "sandbox: ") {
			own = append(own, l)
		}
	}
	if len(own) != 1 || !strings.Contains(own[0], "closing the sandbox's proxy listeners") {
		t.Errorf("logged %q, want one line of the sandbox's about the proxy", logged)
	}
}

func TestSuperviseCancel(t *testing.T) {
	f := newFake(startReport{started: true}, 137)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := supervise(ctx, Spec{Network: NetworkNone}, f, runPlan{})
	if !errors.Is(err, context.DeadlineExceeded) || f.kills != 1 {
		t.Fatalf("err %v, kills %d; want DeadlineExceeded after one kill", err, f.kills)
	}
}

// TestSuperviseFailedReport: a sandbox that reports a failure is killed;
// a failure from before CMD could run is marked for BackendAuto.
func TestSuperviseFailedReport(t *testing.T) {
	for _, notStarted := range []bool{false, true} {
		lns := loopbackPair(t)
		f := newFake(startReport{err: errors.New("setting up the sandbox: no"), notStarted: notStarted}, 125)
		_, err := supervise(context.Background(), Spec{Network: NetworkProxy}, f, runPlan{listeners: lns})
		var ns *notStartedError
		if err == nil || !strings.Contains(err.Error(), "setting up the sandbox: no") || errors.As(err, &ns) != notStarted {
			t.Errorf("notStarted %v: err %v", notStarted, err)
		}
		if f.kills != 1 {
			t.Errorf("notStarted %v: %d kills, want 1", notStarted, f.kills)
		}
		if accepts(lns[0].Addr().String()) {
			t.Errorf("notStarted %v: the planned listeners were not closed", notStarted)
		}
	}
}

// TestSuperviseNeverStarted: a sandbox that ends without starting CMD is a
// failure of sandgate's, even without a report saying why.
func TestSuperviseNeverStarted(t *testing.T) {
	f := newFake(startReport{}, 125)
	f.exit()
	_, err := supervise(context.Background(), Spec{Network: NetworkNone}, f, runPlan{})
	if err == nil || !strings.Contains(err.Error(), "exited (status 125) before starting the command") {
		t.Fatalf("err = %v", err)
	}
}

// TestSuperviseStartError: a sandbox that cannot start leaves nothing
// open.
func TestSuperviseStartError(t *testing.T) {
	lns := loopbackPair(t)
	f := newFake(startReport{}, 0)
	f.startErr = errors.New("no sandbox today")
	if _, err := supervise(context.Background(), Spec{Network: NetworkProxy}, f, runPlan{listeners: lns}); err != f.startErr {
		t.Fatalf("err = %v, want the start error", err)
	}
	if accepts(lns[0].Addr().String()) || accepts(lns[1].Addr().String()) {
		t.Error("the planned listeners are still open")
	}
}

// TestSuperviseExecMessage: why CMD could not be executed is sandgate's
// own message, given once the sandbox is gone, and the run's status is
// CMD's 127, also with a proxy (whose listeners a netns sandbox never
// made, and an identity run's plan closes unserved).
func TestSuperviseExecMessage(t *testing.T) {
	for _, c := range []struct {
		network Network
		planned bool // the plan has the proxy's listeners (identity)
	}{{NetworkNone, false}, {NetworkProxy, false}, {NetworkProxy, true}} {
		t.Run(fmt.Sprintf("%v-planned-%v", c.network, c.planned), func(t *testing.T) {
			f := newFake(startReport{started: true, execMsg: "nope: command not found"}, 127)
			f.exit()
			var stderr bytes.Buffer
			var msgs []string
			var plan runPlan
			if c.planned {
				plan.listeners = loopbackPair(t)
			}
			spec := Spec{Network: c.network, Stderr: &stderr, Notify: func(m string) { msgs = append(msgs, m) }}
			res, err := supervise(context.Background(), spec, f, plan)
			if err != nil || res.ExitCode != 127 {
				t.Fatalf("supervise = %+v, %v", res, err)
			}
			if len(msgs) != 1 || msgs[0] != "nope: command not found" {
				t.Errorf("messages %q, want the exec failure once", msgs)
			}
			if stderr.Len() != 0 {
				t.Errorf("sandgate's message went to CMD's stderr: %q", stderr.String())
			}
			for _, ln := range plan.listeners {
				if accepts(ln.Addr().String()) {
					t.Errorf("the planned listener %v is still open", ln.Addr())
				}
			}
		})
	}
}

// TestSuperviseBroken: when the watch over the run's enforcement speaks,
// a live sandbox is killed at once and the run fails with its error, after
// one message; a sandbox whose enforcement broke before it started is
// never started.
func TestSuperviseBroken(t *testing.T) {
	broke := &UnavailableError{Reason: "the rules were deleted while the run was live", Fix: "run `sandgate setup`"}
	f := newFake(startReport{started: true}, 137)
	broken := make(chan *UnavailableError, 1)
	var mu sync.Mutex
	var msgs []string
	spec := Spec{Network: NetworkNone, Notify: func(m string) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() }}
	done := make(chan error, 1)
	go func() {
		_, err := supervise(context.Background(), spec, f, runPlan{broken: broken})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	broken <- broke
	select {
	case err := <-done:
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue != broke || f.kills != 1 {
			t.Errorf("err %v, kills %d; want the watch's error after one kill", err, f.kills)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the run went on after its enforcement broke")
	}
	mu.Lock()
	if len(msgs) != 1 || msgs[0] != "killed the run: the rules were deleted while the run was live" {
		t.Errorf("messages %q", msgs)
	}
	mu.Unlock()

	lns := loopbackPair(t)
	f = newFake(startReport{started: true}, 0)
	broken = make(chan *UnavailableError, 1)
	broken <- broke
	_, err := supervise(context.Background(), Spec{Network: NetworkProxy}, f, runPlan{listeners: lns, broken: broken})
	if err != error(broke) || f.started {
		t.Errorf("broken before the start: err %v, started %v; want the watch's error, no sandbox", err, f.started)
	}
	if accepts(lns[0].Addr().String()) {
		t.Error("the planned listeners are still open")
	}
}

// fakeTransparent is a transparentPath that records what it was given.
type fakeTransparent struct {
	mu       sync.Mutex
	files    []*os.File
	served   bool
	stops    int
	serveErr error
}

func (f *fakeTransparent) serve(_ *proxy.Server, files []*os.File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served, f.files = true, files
	return f.serveErr
}

func (f *fakeTransparent) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
}

// TestSuperviseTransparent: the transparent path gets the sandbox's files
// once CMD runs and is stopped at the end; a failing one fails the run and
// kills the sandbox; one whose sandbox never starts is stopped all the same.
func TestSuperviseTransparent(t *testing.T) {
	spec := Spec{Network: NetworkProxy, Stdin: strings.NewReader("")}
	file, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()

	tp := &fakeTransparent{}
	f := newFake(startReport{started: true, files: []*os.File{file}}, 0)
	f.exit()
	if _, err := supervise(context.Background(), spec, f, runPlan{listeners: loopbackPair(t), transparent: tp}); err != nil {
		t.Fatal(err)
	}
	if !tp.served || len(tp.files) != 1 || tp.files[0] != file || tp.stops != 1 {
		t.Errorf("served %v with %v, stopped %d times; want served with the file, stopped once", tp.served, tp.files, tp.stops)
	}

	bad := errors.New("no transparent path")
	tp = &fakeTransparent{serveErr: bad}
	f = newFake(startReport{started: true}, 0)
	if _, err := supervise(context.Background(), spec, f, runPlan{listeners: loopbackPair(t), transparent: tp}); !errors.Is(err, bad) {
		t.Errorf("supervise = %v, want the transparent path's error", err)
	}
	if f.kills != 1 || tp.stops != 1 {
		t.Errorf("kills %d, stops %d; want the sandbox killed and the path stopped once", f.kills, tp.stops)
	}

	// A sandbox that could not make the path runs without it, and says so.
	tp = &fakeTransparent{}
	var said []string
	off := spec
	off.Notify = func(m string) { said = append(said, m) }
	f = newFake(startReport{started: true, transparentOff: "no nf_tables"}, 0)
	f.exit()
	if _, err := supervise(context.Background(), off, f, runPlan{listeners: loopbackPair(t), transparent: tp}); err != nil {
		t.Fatal(err)
	}
	if tp.served || tp.stops != 1 || len(said) != 1 || !strings.Contains(said[0], "without the transparent path") || !strings.Contains(said[0], "no nf_tables") {
		t.Errorf("served %v, stops %d, said %q; want not served, stopped once, told why", tp.served, tp.stops, said)
	}

	tp = &fakeTransparent{}
	f = newFake(startReport{}, 0)
	f.startErr = errors.New("cannot start")
	if _, err := supervise(context.Background(), spec, f, runPlan{transparent: tp}); err == nil {
		t.Error("a sandbox that did not start did not fail the run")
	}
	if tp.served || tp.stops != 1 {
		t.Errorf("served %v, stops %d; want stopped once, never served", tp.served, tp.stops)
	}
}

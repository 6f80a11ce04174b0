//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/starttrace"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// initSandbox is a Linux sandbox: sandgate re-executed as the init (package
// initproc) of new namespaces, reporting on a socket pair. Both Linux
// backends run this way; they differ in the init's namespaces, credentials
// and configuration, and in whether the init makes the proxy's listeners.
type initSandbox struct {
	backend Backend          // BackendNetns or BackendIdentity: how failures read
	exe     string           // the binary re-executed as the init
	command []string         // CMD and its arguments
	cfg     initproto.Config // PTY is filled in by start
	env     []string         // the init's environment
	// attr holds the namespaces and credentials of the init; start adds
	// Pdeathsig and Setpgid.
	attr syscall.SysProcAttr
	// initListens says that the init makes the proxy's listeners and
	// passes them with its report (netns with NetworkProxy).
	initListens bool
	// configure, when set, completes cfg once the init has been executed,
	// while its Go runtime starts (the init waits for its configuration
	// on the status socket, see initproto.DeferredArgs); an error kills
	// the init and fails the start.
	configure func(cfg *initproto.Config) error

	cmd     *exec.Cmd
	term    *terminal
	statusR *os.File
	// exited is closed at the run's end: when the init reports CMD's end
	// (initproto.Exited: nothing but the init is left) or, without that
	// report, once the init has been reaped. reaped is closed once it
	// has been reaped.
	exited  chan struct{}
	reaped  chan struct{}
	endOnce sync.Once
	code    *int // CMD's exit status as the init reported it; nil: the init's own
	waitErr error
}

// start starts the init on a locked thread (Pdeathsig fires when the thread
// that started the child ends: start and wait on one locked thread so that
// only sandgate's own death triggers it), completes its configuration
// (configure) while the init's Go runtime starts, and sends it.
func (b *initSandbox) start(st streams) (<-chan startReport, error) {
	// The init reports on a socket pair, with the proxy's listeners attached.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	if err := unix.SetNonblock(sp[0], true); err != nil {
		unix.Close(sp[0])
		unix.Close(sp[1])
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	b.statusR = os.NewFile(uintptr(sp[0]), "sandbox-status")
	statusW := os.NewFile(uintptr(sp[1]), "sandbox-status-init")
	defer statusW.Close()
	if err := b.prepare(st, statusW); err != nil {
		b.abandon()
		return nil, err
	}
	started := make(chan error, 1)
	starting := make(chan struct{})
	b.exited, b.reaped = make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		close(starting)
		if err := b.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		b.waitErr = b.cmd.Wait()
		starttrace.Mark("init reaped")
		close(b.reaped)
		b.end(nil)
	}()
	// The configuration is made once the init has been executed, while
	// its Go start-up runs. Not earlier: until its exec the init shares
	// sandgate's memory copy-on-write (with CLONE_NEWUSER, Go forks
	// without CLONE_VM), so every page the planning wrote faulted, and
	// the fork held sandgate's memory map against the planning's page
	// faults; planning alongside the fork took 2.4 ms against 1 ms alone,
	// and delayed the fork itself.
	<-starting
	if err := <-started; err != nil {
		b.abandon()
		return nil, b.startError(err)
	}
	starttrace.Mark("init started")
	var cerr error
	if b.configure != nil {
		cerr = b.configure(&b.cfg)
	}
	starttrace.Mark("configuration made")
	statusW.Close()
	if cerr == nil {
		cerr = initproto.SendConfig(b.statusR, b.cfg)
	}
	if cerr != nil {
		_ = b.cmd.Process.Kill()
		<-b.exited
		b.abandon()
		return nil, cerr
	}
	// The command must not be able to ptrace or read the memory of the
	// process that holds the proxy (same uid on the host). Not before the
	// start: a non-dumpable parent forks a non-dumpable child whose uid_map
	// an unprivileged parent may not write. The command itself starts only
	// after the init's own setup, later than this.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		_ = b.cmd.Process.Kill()
		<-b.exited
		b.abandon()
		return nil, fmt.Errorf("marking sandgate non-dumpable: %w", err)
	}
	if b.term != nil {
		b.term.start()
	}
	reports := make(chan startReport, 1)
	go func() {
		st, files, ok, err := initproto.Recv(b.statusR)
		r := b.report(st, files, ok, err)
		starttrace.Mark("init's report read")
		reports <- r
		if ok && err == nil && st.Kind == initproto.Started {
			b.awaitExit()
		}
	}()
	return reports, nil
}

// awaitExit reads the init's report of CMD's end (initproto.Exited) and
// ends the run with it: every process of the sandbox but the init is gone
// then, and the init's own exit (the teardown of its namespaces) need not
// be waited for. Anything else (the init died, or the socket was closed)
// leaves the end to the init's reaping.
func (b *initSandbox) awaitExit() {
	st, files, ok, err := initproto.Recv(b.statusR)
	initproto.CloseAll(files)
	if err != nil || !ok || st.Kind != initproto.Exited {
		return
	}
	starttrace.Mark("exit reported")
	code := st.Code
	b.end(&code)
}

// end ends the run, once: with CMD's exit status as the init reported it,
// or (code nil) with the init's own, once it has been reaped.
func (b *initSandbox) end(code *int) {
	b.endOnce.Do(func() {
		b.code = code
		close(b.exited)
	})
}

// prepare makes the init's command: its streams (a pseudo-terminal of its
// own when stdin is a terminal), the status socket and its argv.
func (b *initSandbox) prepare(st streams, statusW *os.File) error {
	attr := b.attr
	attr.Pdeathsig = syscall.SIGKILL
	// Its own process group: terminal signals reach the command once,
	// through sandgate, not also directly.
	attr.Setpgid = true
	b.cmd = &exec.Cmd{
		Path:        b.exe,
		Env:         b.env,
		Stdin:       st.in,
		Stdout:      st.out,
		Stderr:      st.err,
		ExtraFiles:  []*os.File{statusW},
		SysProcAttr: &attr,
	}
	if f, ok := st.in.(*os.File); ok && isTerminal(f) {
		if err := b.openTerminal(f, st); err != nil {
			return fmt.Errorf("setting up the terminal: %w", err)
		}
	}
	b.cmd.Args = initproto.DeferredArgs(b.command)
	return nil
}

// openTerminal gives the init a new pseudo-terminal for every stream that
// is a terminal, relayed to the user's.
func (b *initSandbox) openTerminal(in *os.File, st streams) error {
	outTerm, errTerm := isTerminalWriter(st.out), isTerminalWriter(st.err)
	var relay io.Writer = io.Discard
	switch {
	case outTerm:
		relay = st.out
	case errTerm:
		relay = st.err
	}
	term, err := newTerminal(in, relay)
	if err != nil {
		return err
	}
	term.hold = st.hold
	b.term = term
	b.cfg.PTY = true
	b.cmd.Stdin = term.slave
	if outTerm {
		b.cmd.Stdout = term.slave
	}
	if errTerm {
		b.cmd.Stderr = term.slave
	}
	return nil
}

// abandon undoes prepare when the init does not run.
func (b *initSandbox) abandon() {
	if b.term != nil {
		b.term.stop(0)
		b.term = nil
	}
	b.statusR.Close()
}

// startError says why the init could not be started. For the netns
// backend, the kernel refusing the namespaces is a notStartedError (auto
// may then try the identity backend).
func (b *initSandbox) startError(err error) error {
	if b.backend == BackendNetns && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.EUSERS) || errors.Is(err, unix.EACCES) && fileExecutable(b.exe)) {
		return &notStartedError{unavailable("cannot create the sandbox's namespaces", err)}
	}
	return fmt.Errorf("starting the sandbox init (%s): %w", b.exe, err)
}

// report turns the init's status (see initproto.Recv) into a startReport.
func (b *initSandbox) report(st initproto.Status, files []*os.File, ok bool, err error) startReport {
	switch {
	case err != nil:
		return startReport{err: err}
	case !ok:
		return startReport{} // the init died before reporting; its exit status tells more
	case st.Kind == initproto.Started:
		if !b.initListens {
			initproto.CloseAll(files)
			return startReport{started: true}
		}
		want := 2
		if b.cfg.Transparent != nil && st.TransparentOff == "" {
			want += initproto.TransparentFiles
		}
		if len(files) != want {
			initproto.CloseAll(files)
			return startReport{started: true, err: fmt.Errorf("the init passed %d sockets, want %d", len(files), want)}
		}
		lns, err := fileListeners(files[:2])
		if err != nil {
			initproto.CloseAll(files[2:])
			return startReport{started: true, err: fmt.Errorf("using the proxy listener from the sandbox: %w", err)}
		}
		return startReport{started: true, listeners: lns, files: files[2:], transparentOff: st.TransparentOff}
	case st.Kind == initproto.ExecError:
		initproto.CloseAll(files)
		return startReport{started: true, execMsg: st.Msg}
	}
	initproto.CloseAll(files)
	switch {
	case st.Unavailable && b.backend == BackendNetns:
		return startReport{err: unavailable("setting up the sandbox", errors.New(st.Msg)), notStarted: true}
	case st.Unavailable:
		return startReport{err: &UnavailableError{Reason: "setting up the sandbox: " + st.Msg}}
	}
	return startReport{err: errors.New("setting up the sandbox: " + st.Msg)}
}

// fileListeners makes listeners of the init's listening sockets, closing
// the files.
func fileListeners(files []*os.File) ([]net.Listener, error) {
	var lns []net.Listener
	var first error
	for _, f := range files {
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		lns = append(lns, ln)
	}
	if first != nil {
		closeListeners(lns)
		return nil, first
	}
	return lns, nil
}

func (b *initSandbox) done() <-chan struct{} { return b.exited }

func (b *initSandbox) signals() []os.Signal { return initproto.ForwardedSignals }

// forward passes a signal to the init, which passes it to CMD; a window
// size change is copied to CMD's terminal instead (the kernel signals the
// pty's foreground group).
func (b *initSandbox) forward(s os.Signal) {
	if s == unix.SIGWINCH && b.term != nil {
		b.term.resize()
		return
	}
	_ = b.cmd.Process.Signal(s)
}

// kill kills the init, and with it the whole PID namespace.
func (b *initSandbox) kill() { _ = b.cmd.Process.Kill() }

// exitStatus is CMD's exit status as the init reported it or, without
// that report, the init's exit status, which is CMD's (128+N for a
// signal).
func (b *initSandbox) exitStatus() (int, error) {
	if b.code != nil {
		return *b.code, nil
	}
	ps := b.cmd.ProcessState
	if ps == nil {
		return 0, fmt.Errorf("waiting for the sandbox: %w", b.waitErr)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ps.ExitCode(), nil
}

// finish waits for the terminal's last output and restores the terminal.
// When the run ended on the init's report of CMD's end, the init waits
// for release to exit; finish releases it and waits for its reaping only
// when what follows needs that (see mustReap). Otherwise it exits, and is
// reaped, off the run's path: after release, or with sandgate.
func (b *initSandbox) finish(grace time.Duration) {
	if b.term != nil {
		b.term.stop(grace)
	}
	if b.mustReap() {
		b.release()
		<-b.reaped
	}
	starttrace.Mark("sandbox finished")
}

// release closes the status socket, on which the init, once it has
// reported CMD's end, waits for its parent to hang up before it exits
// (the teardown of its namespaces then does not compete with the end of
// the run for the CPUs). It is the supervisor's last step. When nothing
// waits for the init's exit, its threads (all of its process group, of
// which it is the only member left) are given the lowest priority
// first: woken on sandgate's CPU, the teardown would otherwise preempt
// what remains of sandgate (its own exit, ~0.1 ms on two busy CPUs).
func (b *initSandbox) release() {
	if b.code != nil && !b.mustReap() {
		select {
		case <-b.reaped: // its pid may be another's by now
		default:
			_ = unix.Setpriority(unix.PRIO_PGRP, b.cmd.Process.Pid, 19)
		}
	}
	b.statusR.Close()
}

// mustReap reports whether the run's end must wait for the init's reaping:
// when os/exec relays one of its streams (not an *os.File: the last of
// CMD's output is copied only once the init has exited, and Wait returns
// after that copy), and in an identity run, whose cgroup (removed after
// the run) must be empty and whose setup lease must not be released while
// a process of the sandbox user is left.
func (b *initSandbox) mustReap() bool {
	if b.backend == BackendIdentity {
		return true
	}
	_, in := b.cmd.Stdin.(*os.File)
	_, out := b.cmd.Stdout.(*os.File)
	_, errOut := b.cmd.Stderr.(*os.File)
	return !in || !out || !errOut
}

// isTerminalWriter reports whether w is a terminal *os.File.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// fileExecutable reports whether path is an executable regular file (so an
// EACCES starting it came from the namespaces, not the file).
func fileExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && unix.Access(path, unix.X_OK) == nil
}

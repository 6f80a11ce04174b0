//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/proxy"
	"github.com/sandgate/sandgate/sandbox/internal/confine"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// shutdownGrace bounds how long Run waits, after the sandbox is gone, for
// the proxy's connections and the terminal's last output.
const shutdownGrace = 2 * time.Second

// Run runs spec.Args in a sandbox and returns its exit status. The error is
// non-nil only when sandgate itself failed (errors wrapping ErrUnavailable
// when enforcement could not be set up); CMD never runs with less isolation
// than asked. When ctx ends, the sandbox is killed and ctx's error returned.
//
// With BackendAuto, Run tries the netns backend and, only when the kernel
// refuses to set it up (before CMD could have started), the identity
// backend; CMD never runs twice. When neither can run, the error explains
// both.
//
// Run marks the calling process non-dumpable (so the sandboxed command
// cannot inspect it) and leaves it so. It forwards SIGINT, SIGTERM, SIGHUP,
// SIGQUIT and SIGWINCH it receives while running to the command.
func Run(ctx context.Context, spec Spec) (Result, error) {
	switch spec.Backend {
	case BackendAuto, BackendNetns, BackendIdentity:
	default:
		return Result{}, fmt.Errorf("sandbox: unknown backend %d", spec.Backend)
	}
	if err := spec.check(); err != nil {
		return Result{}, err
	}
	if !confine.SupportsArch() {
		return Result{}, fmt.Errorf("sandbox: %w: the seccomp filter does not support %s yet", ErrUnavailable, runtime.GOARCH)
	}
	switch spec.Backend {
	case BackendNetns:
		res, err := runNetns(ctx, spec)
		return res, unwrapNotStarted(err)
	case BackendIdentity:
		res, err := runIdentity(ctx, spec)
		return res, unwrapNotStarted(err)
	}
	// auto: netns when the kernel lets it set the sandbox up; when it
	// refuses before CMD has run, the identity backend.
	res, err := runNetns(ctx, spec)
	var ns *notStartedError
	if !errors.As(err, &ns) {
		return res, err
	}
	res, idErr := runIdentity(ctx, spec)
	var idns *notStartedError
	if errors.As(idErr, &idns) {
		return res, fmt.Errorf("sandbox: %w: no backend can run here: the netns backend: %s; the identity backend: %s",
			ErrUnavailable, trimUnavailable(ns.err), trimUnavailable(idns.err))
	}
	return res, idErr
}

// notStartedError marks a failure that happened before CMD could have run,
// so that --backend auto may try the next backend. CMD never runs twice.
type notStartedError struct{ err error }

func (e *notStartedError) Error() string { return e.err.Error() }
func (e *notStartedError) Unwrap() error { return e.err }

// unwrapNotStarted returns the error inside a notStartedError.
func unwrapNotStarted(err error) error {
	var ns *notStartedError
	if errors.As(err, &ns) && err == error(ns) {
		return ns.err
	}
	return err
}

// trimUnavailable shortens an ErrUnavailable error for a combined message.
func trimUnavailable(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "sandbox: ")
	return strings.TrimPrefix(msg, ErrUnavailable.Error()+": ")
}

// runNetns runs spec with the netns backend. Failures before CMD ran in
// which the kernel refused the namespaces are notStartedErrors.
func runNetns(ctx context.Context, spec Spec) (Result, error) {
	exe, self := initExecutable(spec)
	cfg := initproto.Config{Network: initNetwork(spec.Network), AllowUnix: spec.AllowUnixSockets, Dir: spec.Dir, Executable: self}
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	attr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWPID |
			unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		// The caller's own ids, inside as outside; root callers too.
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		// The init needs these (in its own user namespace only) to mount
		// /proc, bring lo up and drop the bounding set; CMD gets none.
		AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_SETPCAP},
	}
	if spec.Network == NetworkFull {
		attr.Cloneflags &^= unix.CLONE_NEWNET
	}
	return launch(ctx, spec, &launchPlan{backend: BackendNetns, exe: exe, cfg: cfg, env: env, attr: attr})
}

// initExecutable returns the binary to re-execute as the init and
// sandgate's own path (for GIT_SSH_COMMAND).
func initExecutable(spec Spec) (exe, self string) {
	exe, self = spec.Executable, spec.Executable
	if exe == "" {
		exe = "/proc/self/exe"
		if p, err := os.Executable(); err == nil {
			self = p
		}
	} else if abs, err := filepath.Abs(exe); err == nil {
		self = abs
	}
	return exe, self
}

// launchPlan is how a backend starts the sandbox init.
type launchPlan struct {
	backend Backend
	exe     string           // the binary re-executed as the init
	cfg     initproto.Config // PTY is filled in by launch
	env     []string         // the init's environment
	// attr holds the namespaces and credentials of the init; launch adds
	// Pdeathsig and Setpgid.
	attr *syscall.SysProcAttr
	// listeners are the proxy's (HTTP, SOCKS5) when the parent made them
	// (identity); nil: the init makes them and passes them (netns).
	listeners []net.Listener
	// creds, when set, must be presented to the proxy.
	creds *proxy.Credentials
}

// launch starts the init described by lp, serves the proxy while CMD runs
// and returns CMD's exit status. It closes lp.listeners.
func launch(ctx context.Context, spec Spec, lp *launchPlan) (Result, error) {
	listeners := lp.listeners
	closeListeners := func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}
	exe, cfg := lp.exe, lp.cfg
	logf := spec.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	stdin, stdout, stderr := spec.Stdin, spec.Stdout, spec.Stderr
	if stdin == nil {
		stdin = os.Stdin
	}
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}

	// The init reports on a socket pair, with the proxy's listeners attached.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		closeListeners()
		return Result{}, fmt.Errorf("sandbox: socketpair: %w", err)
	}
	if err := unix.SetNonblock(sp[0], true); err != nil {
		unix.Close(sp[0])
		unix.Close(sp[1])
		closeListeners()
		return Result{}, fmt.Errorf("sandbox: socketpair: %w", err)
	}
	statusR := os.NewFile(uintptr(sp[0]), "sandbox-status")
	statusW := os.NewFile(uintptr(sp[1]), "sandbox-status-init")
	defer statusR.Close()
	defer statusW.Close()

	attr := *lp.attr
	attr.Pdeathsig = syscall.SIGKILL
	// Its own process group: terminal signals reach the command once,
	// through sandgate, not also directly.
	attr.Setpgid = true
	cmd := &exec.Cmd{
		Path:        exe,
		Env:         lp.env,
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		ExtraFiles:  []*os.File{statusW},
		SysProcAttr: &attr,
	}

	var term *terminal
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		outTerm, errTerm := isTerminalWriter(stdout), isTerminalWriter(stderr)
		var relay io.Writer = io.Discard
		switch {
		case outTerm:
			relay = stdout
		case errTerm:
			relay = stderr
		}
		if term, err = newTerminal(f, relay); err != nil {
			closeListeners()
			return Result{}, fmt.Errorf("sandbox: setting up the terminal: %w", err)
		}
		defer term.restore()
		cfg.PTY = true
		cmd.Stdin = term.slave
		if outTerm {
			cmd.Stdout = term.slave
		}
		if errTerm {
			cmd.Stderr = term.slave
		}
	}
	if cmd.Args, err = initproto.Args(cfg, spec.Args); err != nil {
		closeListeners()
		return Result{}, fmt.Errorf("sandbox: %w", err)
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, initproto.ForwardedSignals...)
	defer signal.Stop(sigs)

	// Pdeathsig fires when the thread that started the child ends: start
	// and wait on one locked thread so that only sandgate's own death
	// triggers it.
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		if term != nil {
			term.stop(0)
		}
		closeListeners()
		if lp.backend == BackendNetns && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL) ||
			errors.Is(err, unix.EUSERS) || errors.Is(err, unix.EACCES) && fileExecutable(exe)) {
			return Result{}, &notStartedError{fmt.Errorf("sandbox: %w", unavailable("cannot create the sandbox's namespaces", err))}
		}
		return Result{}, fmt.Errorf("sandbox: starting the sandbox init (%s): %w", exe, err)
	}
	statusW.Close()
	// The command must not be able to ptrace or read the memory of the
	// process that holds the proxy (same uid on the host). Not before the
	// start: a non-dumpable parent forks a non-dumpable child whose uid_map
	// an unprivileged parent may not write. The command itself starts only
	// after the init's own setup, later than this.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		killAndWait(cmd, exited)
		if term != nil {
			term.stop(0)
		}
		closeListeners()
		return Result{}, fmt.Errorf("sandbox: marking sandgate non-dumpable: %w", err)
	}
	if term != nil {
		term.start()
	}

	type statusMsg struct {
		st    initproto.Status
		files []*os.File
		ok    bool
		err   error
	}
	statusCh := make(chan statusMsg, 1)
	go func() {
		var m statusMsg
		m.st, m.files, m.ok, m.err = initproto.Recv(statusR)
		statusCh <- m
	}()

	type serveEnd struct {
		what string
		err  error
	}
	var (
		res       Result
		execMsg   string // why CMD could not be executed
		runErr    error
		started2  bool // CMD runs (or ran)
		gotStatus bool
		initDone  bool
		waitErr   error
		srv       *proxy.Server
		serving   int
		notStart  bool // the init reported that the kernel refused its setup
		serveEnds = make(chan serveEnd, 2)
		shutting  bool
		ctxDone   = ctx.Done()
		killed    bool
		killInit  = func() {
			if !killed {
				killed = true
				_ = cmd.Process.Kill()
			}
		}
		stopProxy = closeListeners
	)
	for !(gotStatus && initDone) {
		select {
		case m := <-statusCh:
			gotStatus = true
			switch {
			case m.err != nil:
				runErr = fmt.Errorf("sandbox: %w", m.err)
				killInit()
			case !m.ok:
				// The init died before reporting; its exit status tells more.
			case m.st.Kind == initproto.Started:
				started2 = true
				if spec.Network == NetworkProxy && lp.listeners == nil {
					if len(m.files) != 2 {
						initproto.CloseAll(m.files)
						runErr = fmt.Errorf("sandbox: the init passed %d listeners, want 2", len(m.files))
						killInit()
						break
					}
					for _, f := range m.files {
						ln, err := net.FileListener(f)
						f.Close()
						if err != nil {
							runErr = fmt.Errorf("sandbox: using the proxy listener from the sandbox: %w", err)
							break
						}
						listeners = append(listeners, ln)
					}
					if runErr != nil {
						stopProxy()
						killInit()
						break
					}
				} else {
					initproto.CloseAll(m.files)
				}
				if spec.Network == NetworkProxy && len(listeners) == 2 {
					srv = proxy.New(proxy.Options{Gate: spec.Gate, Audit: spec.Audit, Credentials: lp.creds, Limits: spec.ProxyLimits, Logf: spec.Logf})
					serving = 2
					go func() { serveEnds <- serveEnd{"HTTP", srv.ServeHTTP(listeners[0])} }()
					go func() { serveEnds <- serveEnd{"SOCKS5", srv.ServeSOCKS(listeners[1])} }()
				}
			case m.st.Kind == initproto.ExecError:
				initproto.CloseAll(m.files)
				execMsg = m.st.Msg
				started2 = true
			default:
				initproto.CloseAll(m.files)
				switch {
				case m.st.Unavailable && lp.backend == BackendNetns:
					runErr = fmt.Errorf("sandbox: %w", unavailable("setting up the sandbox", errors.New(m.st.Msg)))
					notStart = true
				case m.st.Unavailable:
					runErr = fmt.Errorf("sandbox: %w: setting up the sandbox: %s", ErrUnavailable, m.st.Msg)
				default:
					runErr = fmt.Errorf("sandbox: setting up the sandbox: %s", m.st.Msg)
				}
			}
		case waitErr = <-exited:
			initDone = true
		case s := <-sigs:
			if s == unix.SIGWINCH && term != nil {
				term.resize() // the kernel signals the pty's foreground group
				continue
			}
			_ = cmd.Process.Signal(s)
		case <-ctxDone:
			ctxDone = nil
			runErr = fmt.Errorf("sandbox: %w", ctx.Err())
			killInit()
		case e := <-serveEnds:
			serving--
			if !shutting && res.ProxyErr == nil {
				err := e.err
				if err == nil {
					err = errors.New("stopped unexpectedly")
				}
				res.ProxyErr = fmt.Errorf("%s proxy: %w", e.what, err)
				logf("sandbox: %v; closing the sandbox's proxy listeners", res.ProxyErr)
				stopProxy()
			}
		}
	}

	// The init is gone, and with it everything in the PID namespace; the
	// command's output has been copied (cmd.Wait returned), so stderr is
	// ours to write to.
	if execMsg != "" {
		fmt.Fprintf(stderr, "sandgate: %s\n", execMsg)
	}
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int(ws.Signal())
		} else {
			res.ExitCode = ps.ExitCode()
		}
	} else if waitErr != nil && runErr == nil {
		runErr = fmt.Errorf("sandbox: waiting for the sandbox: %w", waitErr)
	}
	if runErr == nil && !started2 {
		runErr = fmt.Errorf("sandbox: the sandbox init exited (status %d) before starting the command", res.ExitCode)
	}

	if srv == nil {
		stopProxy()
	} else {
		shutting = true
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		_ = srv.Shutdown(sctx)
		cancel()
		stopProxy()
		for ; serving > 0; serving-- {
			<-serveEnds
		}
	}
	if term != nil {
		term.stop(shutdownGrace)
	}
	if runErr != nil {
		if notStart && !started2 {
			return res, &notStartedError{runErr}
		}
		return res, runErr
	}
	return res, nil
}

// killAndWait kills the init (and so the whole sandbox) and waits for it.
func killAndWait(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Kill()
	<-exited
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

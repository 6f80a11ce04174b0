//go:build windows

package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/sandgate/sandgate/proxy"
	"github.com/sandgate/sandgate/proxyenv"
	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/setup"
	"github.com/sandgate/sandgate/winsec"
)

// On Windows the only backend is identity: CMD runs as a sandbox user that
// `sandgate setup` created, started with CreateProcessWithLogonW (see
// winsec.StartAsUser) as sandgate's own launcher, which then starts CMD
// with a restricted token (winsec.RestrictedSelfToken). NetworkProxy and
// NetworkNone use the offline user, whose Windows Firewall rules (package
// winfw) leave it only the loopback proxy ports; NetworkFull uses the
// online user, which has no rules. Proxy-enforced runs always take this
// path, whatever backend was asked for: there is no weaker mode to fall
// back to.

// shutdownGraceWindows bounds how long Run waits, after CMD is gone, for
// the proxy's connections and the last output.
const shutdownGraceWindows = 2 * time.Second

// exitInterrupted is the status of a run ended by Ctrl-C or Ctrl-Break
// (128 + SIGINT, as on Linux).
const exitInterrupted = 130

// Run runs spec.Args as a sandbox user and returns its exit status. The
// error is non-nil only when sandgate itself failed (errors wrapping
// ErrUnavailable when the identity backend is not usable); CMD never runs
// with less enforcement than asked. When the installed setup does not fit
// the run, Run says why in one line and updates it (setup.Reconcile, which
// shows the administrator prompt). When ctx ends, or on Ctrl-C, every
// process of the sandbox is ended (its job object is terminated).
func Run(ctx context.Context, spec Spec) (Result, error) {
	switch spec.Backend {
	case BackendAuto, BackendIdentity:
	case BackendNetns:
		return Result{}, fmt.Errorf("sandbox: %w: the netns backend needs Linux; on Windows use --backend identity (or auto)", ErrUnavailable)
	default:
		return Result{}, fmt.Errorf("sandbox: unknown backend %d", spec.Backend)
	}
	if err := spec.check(); err != nil {
		return Result{}, err
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
	logf := spec.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	o := setup.Options{}
	m, err := currentSetup(o, spec, stderr)
	if err != nil {
		return Result{}, err
	}
	id := ruleplan.Offline
	if spec.Network == NetworkFull {
		id = ruleplan.Online
	}
	acc, err := setup.Identity(o, m, id)
	if err != nil {
		return Result{}, fmt.Errorf("sandbox: %w: %v", ErrUnavailable, err)
	}
	offPW, onPW, err := setup.Passwords(o)
	if err != nil {
		return Result{}, fmt.Errorf("sandbox: %w: %v", ErrUnavailable, err)
	}
	password := offPW
	if id == ruleplan.Online {
		password = onPW
	}

	dir := spec.Dir
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return Result{}, fmt.Errorf("sandbox: %w", err)
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return Result{}, fmt.Errorf("sandbox: %w", err)
	}
	added, err := winsec.GrantDir(dir, acc.GroupSID)
	if err != nil {
		return Result{}, fmt.Errorf("sandbox: %w", err)
	}
	if added && !spec.KeepDirGrant {
		defer func() {
			if err := winsec.RevokeDir(dir, acc.GroupSID); err != nil {
				fmt.Fprintf(stderr, "sandgate: %v (the sandbox group may still have access to %s)\n", err, dir)
			}
		}()
	}

	// The launcher: setup's copy of sandgate, which the sandbox users can
	// read (setup.Status has checked that it is this build).
	exe := spec.Executable
	if exe == "" {
		exe = o.LauncherPath()
	}
	if exe, err = filepath.Abs(exe); err != nil {
		return Result{}, fmt.Errorf("sandbox: %w", err)
	}
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}

	var (
		srv       *proxy.Server
		listeners []net.Listener
	)
	switch spec.Network {
	case NetworkProxy:
		listeners, err = takeProxyPorts(m.ProxyPorts)
		if err != nil {
			return Result{}, fmt.Errorf("sandbox: %w", err)
		}
		defer closeAllListeners(listeners)
		ports := []uint16{portOf(listeners[0]), portOf(listeners[1])}
		if !setup.Covers(m, ports, spec.AllowLocalBinding) {
			return Result{}, fmt.Errorf("sandbox: %w: the installed rules do not cover proxy ports %v", ErrUnavailable, ports)
		}
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return Result{}, fmt.Errorf("sandbox: generating proxy credentials: %w", err)
		}
		creds := &proxy.Credentials{User: "sandgate", Password: hex.EncodeToString(b[:])}
		env, err = winsec.ProxyEnv(env, winsec.ProxyRun{
			HTTPPort: ports[0], SOCKSPort: ports[1], User: creds.User, Password: creds.Password,
			AllowLocalBinding: spec.AllowLocalBinding, Executable: exe,
		})
		if err != nil {
			return Result{}, fmt.Errorf("sandbox: %w", err)
		}
		// Every proxy port CMD is told about must be one the rules leave open.
		if ps, _ := proxyenv.PortsFromEnv(env); !setup.Covers(m, ps, spec.AllowLocalBinding) {
			return Result{}, fmt.Errorf("sandbox: internal error: CMD's proxy environment names ports %v outside the installed %v", ps, m.ProxyPorts)
		}
		srv = proxy.New(proxy.Options{Gate: spec.Gate, Audit: spec.Audit, Credentials: creds, Limits: spec.ProxyLimits, Logf: spec.Logf})
	case NetworkNone:
		env = winsec.NoNetworkEnv(env)
	case NetworkFull:
		env = winsec.WindowsEnv(env)
	}
	launch, err := winsec.EncodeLaunch(winsec.Launch{Args: spec.Args, Dir: dir, SandboxGroupID: acc.GroupSID})
	if err != nil {
		return Result{}, fmt.Errorf("sandbox: %w", err)
	}
	env = winsec.WindowsEnv(append(env, winsec.LaunchEnv+"="+launch))

	// Pipes for CMD's standard streams, relayed by this process: the
	// sandbox user's process gets a console of its own (hidden), never the
	// caller's.
	var p pipes
	if err := p.open(); err != nil {
		return Result{}, fmt.Errorf("sandbox: %w", err)
	}
	defer p.closeAll()

	type serveEnd struct {
		what string
		err  error
	}
	serveEnds := make(chan serveEnd, 2)
	serving := 0
	if srv != nil {
		serving = 2
		go func() { serveEnds <- serveEnd{"HTTP", srv.ServeHTTP(listeners[0])} }()
		go func() { serveEnds <- serveEnd{"SOCKS5", srv.ServeSOCKS(listeners[1])} }()
	}
	stopProxy := func() {
		if srv == nil {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGraceWindows)
		_ = srv.Shutdown(sctx)
		cancel()
		closeAllListeners(listeners)
		for ; serving > 0; serving-- {
			<-serveEnds
		}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	proc, err := winsec.StartAsUser(winsec.AsUser{
		User: acc.Name, Password: password,
		Exe: exe, Args: []string{exe, winsec.LaunchArg},
		Env: env, Dir: dir,
		Stdin: p.childIn, Stdout: p.childOut, Stderr: p.childErr,
	})
	if err != nil {
		stopProxy()
		return Result{}, fmt.Errorf("sandbox: %w: %v", ErrUnavailable, err)
	}
	defer proc.Close()
	p.closeChildEnds()

	var relays sync.WaitGroup
	relays.Add(2)
	go func() { defer relays.Done(); io.Copy(stdout, p.out) }()
	go func() { defer relays.Done(); io.Copy(stderr, p.err) }()
	go func() {
		io.Copy(p.in, stdin)
		p.in.Close()
	}()

	exited := make(chan struct{})
	var code uint32
	var waitErr error
	go func() {
		code, waitErr = proc.Wait()
		close(exited)
	}()

	var res Result
	var runErr error
	ctxDone := ctx.Done()
	for done := false; !done; {
		select {
		case <-exited:
			done = true
		case <-sigs:
			_ = proc.Kill(exitInterrupted)
		case <-ctxDone:
			ctxDone = nil
			runErr = fmt.Errorf("sandbox: %w", ctx.Err())
			_ = proc.Kill(exitInterrupted)
		case e := <-serveEnds:
			serving--
			if res.ProxyErr == nil {
				err := e.err
				if err == nil {
					err = errors.New("stopped unexpectedly")
				}
				res.ProxyErr = fmt.Errorf("%s proxy: %w", e.what, err)
				logf("sandbox: %v; closing the sandbox's proxy listeners", res.ProxyErr)
				closeAllListeners(listeners)
			}
		}
	}
	// The launcher is gone; end whatever CMD left behind in the job, so
	// the relays see the end of their pipes.
	_ = proc.Kill(uint32(code))
	relayed := make(chan struct{})
	go func() { relays.Wait(); close(relayed) }()
	select {
	case <-relayed:
	case <-time.After(shutdownGraceWindows):
	}
	stopProxy()
	if waitErr != nil && runErr == nil {
		runErr = fmt.Errorf("sandbox: %w", waitErr)
	}
	res.ExitCode = int(code)
	return res, runErr
}

// currentSetup returns the installed setup's marker when it fits the run,
// else says why on one line and reconciles it (which elevates), then
// checks again. A setup that still does not fit is an error.
func currentSetup(o setup.Options, spec Spec, stderr io.Writer) (setup.Marker, error) {
	m, drift, err := setup.Status(o)
	installed := err == nil
	if err != nil && !errors.Is(err, setup.ErrNotInstalled) {
		return setup.Marker{}, fmt.Errorf("sandbox: %w: %v", ErrUnavailable, err)
	}
	want := setup.Options{ProxyPorts: m.ProxyPorts, AllowLocalBinding: m.AllowLocalBinding}
	if spec.Network != NetworkFull {
		want.AllowLocalBinding = spec.AllowLocalBinding
		if installed && m.AllowLocalBinding != spec.AllowLocalBinding {
			drift = append(drift, fmt.Sprintf("this run needs allow_local_binding=%v, the installed rules have %v", spec.AllowLocalBinding, m.AllowLocalBinding))
		}
	}
	if installed && len(drift) == 0 {
		return m, nil
	}
	if !installed {
		drift = []string{"sandgate setup has not been run"}
	}
	if winsec.IsElevated() {
		// No prompt will follow: say here what is being changed and why.
		// Unelevated, setup.Reconcile prints that line itself, before the
		// administrator prompt.
		fmt.Fprintf(stderr, "sandgate: the identity backend's setup does not fit this run (%s); updating it\n", strings.Join(drift, "; "))
	}
	if _, _, err := setup.Reconcile(want); err != nil {
		return setup.Marker{}, fmt.Errorf("sandbox: %w: updating the setup: %v", ErrUnavailable, err)
	}
	m, drift, err = setup.Status(o)
	if err != nil {
		return setup.Marker{}, fmt.Errorf("sandbox: %w: %v", ErrUnavailable, err)
	}
	if spec.Network != NetworkFull && m.AllowLocalBinding != spec.AllowLocalBinding {
		drift = append(drift, "allow_local_binding still differs")
	}
	if len(drift) > 0 {
		return setup.Marker{}, fmt.Errorf("sandbox: %w: the setup is still not current after updating it: %s", ErrUnavailable, strings.Join(drift, "; "))
	}
	return m, nil
}

// takeProxyPorts listens on two free ports of the reserved set, on
// 127.0.0.1 with SO_EXCLUSIVEADDRUSE (no other socket, of any user, can
// bind the same port while sandgate holds it).
func takeProxyPorts(reserved []uint16) ([]net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, soExclusiveAddrUse, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var ls []net.Listener
	_, err := winsec.TakePorts(reserved, 2, func(p uint16) bool {
		ln, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		ls = append(ls, ln)
		return true
	})
	if err != nil {
		closeAllListeners(ls)
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return ls, nil
}

// soExclusiveAddrUse is SO_EXCLUSIVEADDRUSE, ~SO_REUSEADDR.
const soExclusiveAddrUse = ^windows.SO_REUSEADDR

func portOf(ln net.Listener) uint16 { return uint16(ln.Addr().(*net.TCPAddr).Port) }

func closeAllListeners(ls []net.Listener) {
	for _, ln := range ls {
		ln.Close()
	}
}

// pipes are CMD's three standard streams: the child ends are inheritable
// handles given to the sandbox process, the parent ends are relayed.
type pipes struct {
	in, out, err                *os.File
	childIn, childOut, childErr windows.Handle
}

func (p *pipes) open() error {
	mk := func(childReads bool) (parent *os.File, child windows.Handle, err error) {
		var r, w windows.Handle
		sa := &windows.SecurityAttributes{InheritHandle: 1}
		sa.Length = uint32(unsafe.Sizeof(*sa))
		if err := windows.CreatePipe(&r, &w, sa, 0); err != nil {
			return nil, 0, fmt.Errorf("creating a pipe for CMD's standard streams: %w", err)
		}
		parentH, childH := r, w
		if childReads {
			parentH, childH = w, r
		}
		// Only the child's end may be inherited.
		if err := windows.SetHandleInformation(parentH, windows.HANDLE_FLAG_INHERIT, 0); err != nil {
			windows.CloseHandle(r)
			windows.CloseHandle(w)
			return nil, 0, err
		}
		return os.NewFile(uintptr(parentH), "sandbox-pipe"), childH, nil
	}
	var err error
	if p.in, p.childIn, err = mk(true); err != nil {
		return err
	}
	if p.out, p.childOut, err = mk(false); err != nil {
		return err
	}
	p.err, p.childErr, err = mk(false)
	return err
}

// closeChildEnds closes this process's copies of the child's ends, so the
// relays see end-of-file when the sandbox's processes are gone.
func (p *pipes) closeChildEnds() {
	for _, h := range []*windows.Handle{&p.childIn, &p.childOut, &p.childErr} {
		if *h != 0 {
			windows.CloseHandle(*h)
			*h = 0
		}
	}
}

func (p *pipes) closeAll() {
	p.closeChildEnds()
	for _, f := range []*os.File{p.in, p.out, p.err} {
		if f != nil {
			f.Close()
		}
	}
}

// MaybeInit must be called first thing in main. On Windows it runs the
// two internal roles of the sandgate binary and exits: the launcher that an
// identity run starts as the sandbox user (winsec.LaunchArg), and the
// elevated setup (setup.ElevatedArg). Otherwise it returns at once.
func MaybeInit() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case winsec.LaunchArg:
		os.Exit(winsec.LauncherMain())
	case setup.ElevatedArg:
		os.Exit(setup.ElevatedMain(os.Args[2:]))
	}
}

//go:build windows

package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/sandgate/sandgate/dirgrant"
	"github.com/sandgate/sandgate/proxyenv"
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

// exitInterrupted is the status of a run ended by Ctrl-C or Ctrl-Break
// (128 + SIGINT, as on Linux).
const exitInterrupted = 130

// Run runs spec.Args as a sandbox user and returns its exit status. The
// error is non-nil only when sandgate itself failed (wrapping an
// *UnavailableError, for which errors.Is(err, ErrUnavailable) holds, when
// the identity backend is not usable); CMD never runs with less
// enforcement than asked. When the installed setup does not fit the run,
// Run says why in one line and updates it (the setup lease,
// setup.Leaser.Acquire, which shows the administrator prompt). When ctx
// ends, or on Ctrl-C, every process of the sandbox is ended (its job
// object is terminated).
func Run(ctx context.Context, spec Spec) (Result, error) {
	res, err := run(ctx, spec)
	return res, runError(err)
}

// run is Run without the package's prefix on its errors.
func run(ctx context.Context, spec Spec) (Result, error) {
	switch spec.Backend {
	case BackendAuto, BackendIdentity:
	case BackendNetns:
		return Result{}, &UnavailableError{Reason: "the netns backend needs Linux", Fix: "on Windows use --backend identity (or auto)"}
	default:
		return Result{}, fmt.Errorf("unknown backend %d", spec.Backend)
	}
	if err := spec.check(); err != nil {
		return Result{}, err
	}
	logf := spec.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	notify := spec.notifier()
	leaser := spec.setupLeaser()
	lease, err := leaser.Acquire(spec.setupNeed(), notify)
	if err != nil {
		return Result{}, setupError(err)
	}
	defer lease.Release()
	repairGrants(leaser, notify)
	sb, err := windowsSandbox(leaser.Options, lease, spec)
	if err != nil {
		return Result{}, err
	}
	grant, err := leaser.Options.GrantRecords().Grant(sb.as.Dir, dirgrant.Grantee{GroupSID: sb.groupSID})
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if err := grant.Release(spec.KeepDirGrant, logf); err != nil {
			notify(fmt.Sprintf("%v (the sandbox group may still have access to %s)", err, sb.as.Dir))
		}
	}()
	plan, err := sb.proxyEnv(lease, spec)
	if err != nil {
		return Result{}, err
	}
	if err := sb.encodeLaunch(spec); err != nil {
		closeListeners(plan.listeners)
		return Result{}, err
	}
	return supervise(ctx, spec, sb, plan)
}

// winSandbox is a Windows sandbox: sandgate's launcher (winsec.LauncherMain)
// started as a sandbox user in a job object of its own, which starts CMD
// with a restricted token. CMD's streams are pipes this process relays.
type winSandbox struct {
	as       winsec.AsUser // Stdin, Stdout and Stderr are filled in by start
	groupSID string        // the sandbox group, granted CMD's directory
	args     []string      // CMD and its arguments

	p       pipes
	proc    *winsec.UserProcess
	relays  sync.WaitGroup
	exited  chan struct{}
	code    uint32
	waitErr error
}

// windowsSandbox says who runs CMD where: the offline user (the online one
// for NetworkFull), the launcher (setup's copy of sandgate, which the
// sandbox users can read; setup.Status has checked that it is this build),
// the working directory and the environment before the proxy's variables.
func windowsSandbox(o setup.Options, lease *setup.Lease, spec Spec) (*winSandbox, error) {
	acc, err := lease.Account()
	if err != nil {
		return nil, &UnavailableError{Reason: err.Error(), Err: err}
	}
	offPW, onPW, err := setup.Passwords(o)
	if err != nil {
		return nil, &UnavailableError{Reason: err.Error(), Err: err}
	}
	password := offPW
	if spec.Network == NetworkFull {
		password = onPW
	}
	dir := spec.Dir
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	exe := spec.Executable
	if exe == "" {
		exe = o.LauncherPath()
	}
	if exe, err = filepath.Abs(exe); err != nil {
		return nil, err
	}
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	return &winSandbox{
		as:       winsec.AsUser{User: acc.Name, Password: password, Exe: exe, Args: []string{exe, winsec.LaunchArg}, Env: env, Dir: dir},
		groupSID: acc.GroupSID,
		args:     spec.Args,
	}, nil
}

// proxyEnv takes the run's proxy ports and credentials (NetworkProxy) and
// sets CMD's environment for its network mode.
func (b *winSandbox) proxyEnv(lease *setup.Lease, spec Spec) (runPlan, error) {
	switch spec.Network {
	case NetworkNone:
		b.as.Env = winsec.NoNetworkEnv(b.as.Env)
		return runPlan{}, nil
	case NetworkFull:
		b.as.Env = winsec.WindowsEnv(b.as.Env)
		return runPlan{}, nil
	}
	env, plan, err := credentialedEnv(lease, b.as.Env, spec.AllowLocalBinding, b.as.Exe, false)
	if err != nil {
		return runPlan{}, err
	}
	env = winsec.WindowsEnv(env)
	// Every proxy port CMD is told about must be one the rules leave open.
	if ps, _ := proxyenv.PortsFromEnv(env); !lease.Covers(ps) {
		closeListeners(plan.listeners)
		return runPlan{}, fmt.Errorf("internal error: CMD's proxy environment names ports %v outside the installed %v", ps, lease.Marker().ProxyPorts)
	}
	b.as.Env = env
	return plan, nil
}

// encodeLaunch hands the launcher CMD, its directory and the sandbox group
// in the environment.
func (b *winSandbox) encodeLaunch(spec Spec) error {
	launch, err := winsec.EncodeLaunch(winsec.Launch{Args: b.args, Dir: b.as.Dir, SandboxGroupID: b.groupSID})
	if err != nil {
		return err
	}
	b.as.Env = winsec.WindowsEnv(append(b.as.Env, winsec.LaunchEnv+"="+launch))
	return nil
}

// start starts the launcher as the sandbox user on pipes for CMD's
// streams: the sandbox user's process gets a console of its own (hidden),
// never the caller's. CMD runs as soon as the launcher does.
func (b *winSandbox) start(st streams) (<-chan startReport, error) {
	if err := b.p.open(); err != nil {
		b.p.closeAll()
		return nil, err
	}
	b.as.Stdin, b.as.Stdout, b.as.Stderr = b.p.childIn, b.p.childOut, b.p.childErr
	proc, err := winsec.StartAsUser(b.as)
	if err != nil {
		b.p.closeAll()
		return nil, &UnavailableError{Reason: err.Error(), Err: err}
	}
	b.proc = proc
	b.p.closeChildEnds()
	b.relays.Add(2)
	go func() { defer b.relays.Done(); io.Copy(st.out, b.p.out) }()
	go func() { defer b.relays.Done(); io.Copy(st.err, b.p.err) }()
	go func() {
		io.Copy(b.p.in, st.in)
		b.p.in.Close()
	}()
	b.exited = make(chan struct{})
	go func() {
		b.code, b.waitErr = proc.Wait()
		close(b.exited)
	}()
	reports := make(chan startReport, 1)
	reports <- startReport{started: true}
	return reports, nil
}

func (b *winSandbox) done() <-chan struct{} { return b.exited }

func (b *winSandbox) signals() []os.Signal { return []os.Signal{os.Interrupt, syscall.SIGTERM} }

// forward ends the sandbox: Windows has no signals to pass on, and Ctrl-C
// or Ctrl-Break ends the run.
func (b *winSandbox) forward(os.Signal) { b.kill() }

func (b *winSandbox) kill() { _ = b.proc.Kill(exitInterrupted) }

func (b *winSandbox) exitStatus() (int, error) {
	return int(b.code), b.waitErr
}

// finish ends whatever CMD left behind in the job, so that the relays see
// the end of their pipes, and waits (at most grace) for them.
func (b *winSandbox) finish(grace time.Duration) {
	_ = b.proc.Kill(b.code)
	relayed := make(chan struct{})
	go func() { b.relays.Wait(); close(relayed) }()
	select {
	case <-relayed:
	case <-time.After(grace):
	}
	b.proc.Close()
	b.p.closeAll()
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

// InitMain runs the sandbox's own process when args (a process's argv)
// say that Run started this binary as one, and returns its exit status; ok
// is false for any other process. On Windows that process is the launcher
// an identity run starts as the sandbox user (winsec.LaunchArg).
func InitMain(args []string) (code int, ok bool) {
	if len(args) < 2 || args[1] != winsec.LaunchArg {
		return 0, false
	}
	return winsec.LauncherMain(), true
}

//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/internal/starttrace"
	"github.com/sandgate/sandgate/proxy"
	"github.com/sandgate/sandgate/sandbox/internal/confine"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// Run runs spec.Args in a sandbox and returns its exit status. The error is
// non-nil only when sandgate itself failed (wrapping an *UnavailableError,
// for which errors.Is(err, ErrUnavailable) holds, when enforcement could
// not be set up); CMD never runs with less isolation than asked. When ctx ends, the sandbox is killed and ctx's error returned.
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
	res, err := run(ctx, spec)
	return res, runError(err)
}

// run is Run without the package's prefix on its errors.
func run(ctx context.Context, spec Spec) (Result, error) {
	switch spec.Backend {
	case BackendAuto, BackendNetns, BackendIdentity:
	default:
		return Result{}, fmt.Errorf("unknown backend %d", spec.Backend)
	}
	if err := spec.check(); err != nil {
		return Result{}, err
	}
	if !confine.SupportsArch() {
		return Result{}, &UnavailableError{Reason: fmt.Sprintf("the seccomp filter does not support %s yet", runtime.GOARCH)}
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
		return res, &UnavailableError{
			Reason: "no backend can run here: the netns backend: " + describe(ns.err) + "; the identity backend: " + describe(idns.err),
			Err:    errors.Join(ns.err, idns.err),
		}
	}
	return res, idErr
}

// runNetns runs spec with the netns backend. Failures before CMD ran in
// which the kernel refused the namespaces are notStartedErrors.
func runNetns(ctx context.Context, spec Spec) (Result, error) {
	starttrace.Mark("CLI parsed")
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	trust, err := newTrustRun(spec, env)
	if err != nil {
		return Result{}, err
	}
	defer trust.remove()
	env, spec.View = trust.environ(env), trust.view(spec.View)
	exe, self := initExecutable(spec)
	cfg := initproto.Config{Network: initNetwork(spec.Network), AllowUnix: spec.AllowUnixSockets, UnixSockets: unixSockets(spec), Dir: spec.Dir, Executable: self}
	attr := syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWPID |
			unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		// The caller's own ids, inside as outside; root callers too.
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		// The init needs these (in its own user namespace only) to mount
		// /proc and the file system view (overlayfs needs
		// CAP_DAC_OVERRIDE for its work directory), bring lo up and drop
		// the bounding set; CMD gets none.
		AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_DAC_OVERRIDE, unix.CAP_NET_ADMIN, unix.CAP_SETPCAP},
	}
	if spec.Network == NetworkFull {
		attr.Cloneflags &^= unix.CLONE_NEWNET
	}
	var plan runPlan
	pc := &netnsConfig{spec: spec, binds: trust.binds()}
	if spec.Network == NetworkProxy && spec.Transparent {
		pc.transparent = &lateTransparent{}
		plan.transparent = pc.transparent
	}
	sb := &initSandbox{backend: BackendNetns, exe: exe, command: spec.Args, cfg: cfg, env: env, attr: attr,
		initListens: spec.Network == NetworkProxy, configure: pc.configure}
	res, err := supervise(ctx, spec, sb, plan)
	res.ViewChanged, res.ViewFindings = viewChanged(pc.view, os.Getuid())
	starttrace.Mark("run done")
	return res, err
}

// netnsConfig is the part of a netns run's init configuration that is made
// while the init's Go runtime starts (initSandbox.configure, once the init
// is executed): the file system view's plan and the transparent path. One
// after the other: the init's start-up keeps another CPU busy meanwhile,
// and on two CPUs the two made concurrently came out about 0.7 ms slower.
type netnsConfig struct {
	spec        Spec
	binds       []initproto.ReplaceFile // made before: the trust bundles' binds
	view        *fsview.Plan            // set by configure
	transparent *lateTransparent        // nil: the run has no transparent path
}

// configure plans the view and prepares the transparent path (when the
// run has one) and adds them to cfg, with the binds made before.
func (pc *netnsConfig) configure(cfg *initproto.Config) error {
	view, err := planView(pc.spec, "", nil)
	if err != nil {
		return err
	}
	raw, err := viewConfig(view)
	if err != nil {
		return err
	}
	pc.view, cfg.View = view, raw
	starttrace.Mark("view planned")
	if pc.transparent != nil {
		tr, it, replace, err := newTransparentRun(pc.spec)
		if err != nil {
			// Without it CMD is confined no less: only proxy-aware
			// programs can connect.
			pc.spec.notifier()("running without the transparent path (only programs that use the proxy variables can connect): " + err.Error())
		} else {
			cfg.Transparent, cfg.Replace, pc.transparent.t = it, replace, tr
		}
		starttrace.Mark("transparent path prepared")
	}
	cfg.Replace = append(cfg.Replace, pc.binds...)
	return nil
}

// lateTransparent is a run's transparent path that configure makes once
// the supervisor holds the run's plan: nil t (not made, or failed) serves
// nothing.
type lateTransparent struct{ t *transparentRun }

func (l *lateTransparent) serve(srv *proxy.Server, files []*os.File) error {
	if l.t == nil {
		closeFiles(files)
		return nil
	}
	return l.t.serve(srv, files)
}

func (l *lateTransparent) stop() {
	if l.t != nil {
		l.t.stop()
	}
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

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/control"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/sandbox"
)

// controlFlags are run's flags for the run's control socket (package
// control): the live policy `sandgate ctl` changes.
type controlFlags struct {
	on bool   // --control
	id string // --control-id (implies --control)

	picked string // the random id runID chose, used by start too
}

// runID returns the run's id: --control-id, or a random one chosen once
// (and used by start), so that everything of the run that names it (a
// decider's questions, the control socket) says the same.
func (c *controlFlags) runID() (string, error) {
	if c.id != "" {
		return c.id, nil
	}
	if c.picked == "" {
		id, err := control.NewRunID()
		if err != nil {
			return "", err
		}
		c.picked = id
	}
	return c.picked, nil
}

func (c *controlFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&c.on, "control", false, "make a control socket for the run, so that sandgate ctl RUN allow|deny|show changes its policy while it runs; the run id is printed on stderr")
	fs.StringVar(&c.id, "control-id", "", "with a control socket, name the run ID (letters, digits, '.', '_', '-') instead of a random id; implies --control")
}

// start makes the run's control socket when asked: the gate gets a live
// policy (unless it has one), the socket's directory is hidden from CMD's
// view, and the run id is printed once on stderr. The returned function
// closes the socket. Runs whose CMD could reach the socket anyway are
// refused (exit 2); a socket that cannot be made fails the run (exit 125)
// rather than starting it without the control asked for.
func (c *controlFlags) start(spec *sandbox.Spec, sink audit.Sink) (func(), error) {
	if !c.on && c.id == "" {
		return func() {}, nil
	}
	if runtime.GOOS != "linux" {
		return nil, usageErr("--control: %w", control.ErrUnsupported)
	}
	if c.id != "" {
		if err := control.CheckRunID(c.id); err != nil {
			return nil, usageErr("--control-id: %w", err)
		}
	}
	if spec.Network != sandbox.NetworkProxy || spec.Gate == nil {
		return nil, usageErr("--control changes the proxy's policy, and --network %s has no proxy: use --network proxy", spec.Network)
	}
	dir, err := control.Dir()
	if err != nil {
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("--control: %w", err)}
	}
	if err := controlReachable(spec, dir); err != nil {
		return nil, err
	}
	if spec.Gate.Live == nil {
		spec.Gate.Live = egress.NewLive(spec.Gate.Policy)
	}
	id, err := c.runID()
	if err != nil {
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("--control: %w", err)}
	}
	srv, err := control.Listen(control.Options{Dir: dir, Run: id, Live: spec.Gate.Live, Command: spec.Args, Audit: sink,
		Logf: func(format string, a ...any) { notify(fmt.Sprintf(format, a...)) }})
	if err != nil {
		if errors.Is(err, control.ErrRunInUse) {
			return nil, usageErr("--control-id: %w", err)
		}
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("--control: %w", err)}
	}
	if spec.View != nil && spec.View.Mode != fsview.ModeHost {
		spec.View.Hide = append(spec.View.Hide, dir)
	}
	go func() {
		if err := srv.Serve(); err != nil {
			notify(fmt.Sprintf("the control socket failed; the run's policy can no longer be changed: %v", err))
		}
	}()
	notify(fmt.Sprintf("run %s: change its policy with sandgate ctl %s allow|deny ENTRY, see it with sandgate ctl %s show", srv.Run(), srv.Run(), srv.Run()))
	return func() { srv.Close() }, nil
}

// controlReachable refuses runs whose CMD could connect to the control
// socket in dir: every unix socket allowed (--allow-unix-sockets) with no
// file system view to hide the directory, or an --allow-unix-socket path in
// the directory itself.
func controlReachable(spec *sandbox.Spec, dir string) error {
	if spec.AllowUnixSockets && (spec.View == nil || spec.View.Mode == fsview.ModeHost) {
		return usageErr("--control with --allow-unix-sockets and --fs host would let CMD reach the control socket and change its own policy: drop one of them, or use --allow-unix-socket PATH")
	}
	real := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return filepath.Clean(p)
	}
	d := real(dir)
	for _, p := range spec.UnixSockets {
		if rp := real(p); rp == d || strings.HasPrefix(rp, d+string(os.PathSeparator)) {
			return usageErr("--allow-unix-socket %s is a control socket: CMD must not change its own policy", p)
		}
	}
	return nil
}

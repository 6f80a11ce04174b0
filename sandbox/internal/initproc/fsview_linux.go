//go:build linux

package initproc

import (
	"errors"
	"os"

	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// The file system view in the init, on both backends:
//
//  1. the init's mounts are made private (slaves of the host's);
//  2. the replacement files of initproto.Config.Replace (sandgate's own
//     /etc/hosts and /etc/resolv.conf views of the transparent path, the
//     trust bundles and directory of Spec.TrustPEM) are
//     bound read-only over the host's (applyReplacements), before the
//     view, whose private /tmp would cover their sources; the binds stay
//     in the view, read-only;
//  3. applyView mounts the plan (fsview.Apply), while the init still has
//     CAP_SYS_ADMIN and CAP_DAC_OVERRIDE (netns: in its user namespace;
//     identity: real root);
//  4. /proc of the new PID namespace is mounted over the view;
//  5. viewLandlock builds the Landlock ruleset over the mounted writable
//     roots, after every mount and while the init can still open every
//     root (identity: before the uid change);
//  6. the lock-down enforces it (confine.Options.FileSystem: after
//     no_new_privs and the capabilities, next to the scopes, before the
//     seccomp filter), and CMD is started from the same locked thread.
//
// A kernel that cannot enforce the view fails the run (exit 125): the
// error wraps fsview.ErrUnavailable and says what and what to do.

// applyView decodes and applies the view of cfg (a nil plan when there is
// none).
func applyView(cfg initproto.Config) (*fsview.Plan, error) {
	if len(cfg.View) == 0 {
		return nil, nil
	}
	plan, err := fsview.UnmarshalPlan(cfg.View)
	if err != nil {
		return nil, &setupError{msg: "sandbox init: decoding the file system view: " + err.Error()}
	}
	// The working directory is held by its old mount: enter it again
	// through the view, where it may now be a writable bind (the
	// workspace) over a read-only original. CMD's own (cfg.Dir) when the
	// run names one: the init's may be a directory the view covers.
	wd := cfg.Dir
	if wd == "" {
		var err error
		if wd, err = os.Getwd(); err != nil {
			return nil, setupErr(err, "sandbox init: the working directory")
		}
	}
	if err := fsview.Apply(plan); err != nil {
		return nil, viewError(err)
	}
	if err := os.Chdir(wd); err != nil {
		return nil, setupErr(err, "sandbox init: the working directory %s is not in the file system view (a private /tmp or a hidden path covers it): run from the workspace, or name it with --workspace or --write", wd)
	}
	return plan, nil
}

// viewLandlock builds the Landlock ruleset of the applied plan (nil, nil
// when there is no view).
func viewLandlock(plan *fsview.Plan) (*fsview.Landlock, error) {
	if plan == nil {
		return nil, nil
	}
	ll, err := fsview.NewLandlock(plan)
	if err != nil {
		return nil, viewError(err)
	}
	return ll, nil
}

// viewError is a failure of the view as the init reports it: unavailable
// when the kernel cannot enforce it.
func viewError(err error) error {
	if errors.Is(err, fsview.ErrUnavailable) {
		return &setupError{msg: err.Error(), unavailable: true}
	}
	return asSetupError(err)
}

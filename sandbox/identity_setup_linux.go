//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/setup"
)

// How the identity backend depends on package setup: setup.Status (the
// marker and every way the live users, group and firewall rules differ from
// it: after a reboot the rules are gone but the marker stays), setup.Drift
// and setup.Covers (does the setup fit this run), setup.Reconcile (for a
// root caller) and setup.Identity (the sandbox user's ids and home). The
// functions sit in variables so that tests can make them fail.
var (
	// setupOptions says where the setup lives (state and account
	// directories, network namespace); the zero value is the product's
	// defaults. Tests point it elsewhere.
	setupOptions   setup.Options
	setupStatus    = setup.Status
	reconcileSetup = setup.Reconcile
	setupIdentity  = setup.Identity
	// identityLockDir holds the locks that coordinate identity runs with
	// each other (root-only, cleared at boot).
	identityLockDir = "/run/sandgate"
)

// identityMode says which rules a run needs: the local-binding mode, or
// none at all for the online user.
type identityMode struct {
	full bool // the online user: the offline rules do not matter
	alb  bool // allow_local_binding, for the offline user
}

func modeOf(spec Spec) identityMode {
	return identityMode{full: spec.Network == NetworkFull, alb: spec.AllowLocalBinding}
}

// setupCommand returns the `sandgate setup` command line that installs
// allow_local_binding=alb over a setup whose mode is installedALB (setup
// keeps the installed mode and ports unless told otherwise), with the ports
// given (nil: keep the installed ones).
func setupCommand(sudo, alb, installedALB bool, ports []uint16) string {
	var b strings.Builder
	if sudo {
		b.WriteString("sudo ")
	}
	b.WriteString("sandgate setup")
	switch {
	case alb:
		b.WriteString(" --allow-local-binding")
	case installedALB:
		b.WriteString(" --allow-local-binding=false")
	}
	if len(ports) > 0 {
		b.WriteString(" --ports " + formatPorts(ports))
	}
	return b.String()
}

// formatPorts is ruleplan.FormatPorts ("47100-47115", "3128,8080-8081").
func formatPorts(ports []uint16) string { return ruleplan.FormatPorts(ports) }

// wantedOptions are the setup options a run in mode accepts: the installed
// port set (a run takes whichever reserved ports are free) and the run's
// local-binding mode (the online user does not care: the installed one),
// with the installed names and the places of setupOptions.
func wantedOptions(m setup.Marker, mode identityMode) setup.Options {
	o := setupOptions
	o.ProxyPorts = slices.Clone(m.ProxyPorts)
	o.AllowLocalBinding = mode.alb
	if mode.full {
		o.AllowLocalBinding = m.AllowLocalBinding
	}
	o.OfflineUser, o.OnlineUser, o.Group = m.OfflineUser, m.OnlineUser, m.Group
	return o
}

// modeReason says why the installed rules' local-binding mode does not fit
// a run in mode ("" when it does).
func modeReason(m setup.Marker, mode identityMode) string {
	o := wantedOptions(m, mode)
	if mode.full || setup.Covers(m, nil, o.AllowLocalBinding) {
		return ""
	}
	return fmt.Sprintf("allow_local_binding changed from %v to %v", m.AllowLocalBinding, o.AllowLocalBinding)
}

// staleReasons lists why the installed setup cannot serve a run in mode,
// judging from the marker alone (nil: it can). Callers without root, who
// cannot read the live rules, get this.
func staleReasons(m setup.Marker, mode identityMode) []string {
	reasons := setup.Drift(m, wantedOptions(m, mode))
	if r := modeReason(m, mode); r != "" && !slices.Contains(reasons, r) {
		reasons = append(reasons, r)
	}
	return reasons
}

// identityNonRootError is what a caller without root gets from the identity
// backend: the state of the setup, and that identity runs need root.
func identityNonRootError(spec Spec) error {
	const needRoot = "identity runs need root (in the host's user namespace) until sandgate has a privileged launcher for the sandbox users; run sandgate as root, or use --backend netns"
	mode := modeOf(spec)
	m, err := setup.ReadMarker(setupOptions.MarkerPath())
	switch {
	case errors.Is(err, setup.ErrNotInstalled):
		return fmt.Errorf("sandbox: %w: the identity backend is not set up (no %s): run `%s`; also, %s",
			ErrUnavailable, setupOptions.MarkerPath(), setupCommand(true, mode.alb && !mode.full, false, nil), needRoot)
	case err != nil:
		return fmt.Errorf("sandbox: %w: %w; %s", ErrUnavailable, err, needRoot)
	}
	if reasons := staleReasons(m, mode); len(reasons) > 0 {
		o := wantedOptions(m, mode)
		return fmt.Errorf("sandbox: %w: the identity setup does not fit this run (%s): run `%s` to reconcile it; also, %s",
			ErrUnavailable, strings.Join(reasons, "; "), setupCommand(true, o.AllowLocalBinding, m.AllowLocalBinding, nil), needRoot)
	}
	return fmt.Errorf("sandbox: %w: %s", ErrUnavailable, needRoot)
}

// identitySetup is a current setup held for one run.
type identitySetup struct {
	marker setup.Marker
	runs   *os.File // shared lock on the mode's runs file (nil for full)
}

// release lets the setup change again once no other run uses it.
func (s *identitySetup) release() {
	if s.runs != nil {
		s.runs.Close()
		s.runs = nil
	}
}

// runsLockName is the file that runs of the offline user hold a shared lock
// on while they rely on rules with that local-binding mode.
func runsLockName(alb bool) string {
	if alb {
		return filepath.Join(identityLockDir, "runs-local-binding.lock")
	}
	return filepath.Join(identityLockDir, "runs-no-local-binding.lock")
}

func openLock(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", name, err)
	}
	return f, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// prepareIdentitySetup makes sure, for a root caller, that the installed
// setup serves a run in mode: the marker says so and the live users and
// rules match it. A stale setup is reconciled (one line on stderr says so);
// a missing one is an error naming the command to run. Runs of the offline
// user hold their mode's rules until release: a run that needs the other
// mode does not switch the rules under them but fails, saying why.
func prepareIdentitySetup(mode identityMode, stderr io.Writer) (*identitySetup, error) {
	markerPath := setupOptions.MarkerPath()
	notInstalled := func() error {
		return fmt.Errorf("sandbox: %w: the identity backend is not set up (no %s): run `%s` first",
			ErrUnavailable, markerPath, setupCommand(false, mode.alb && !mode.full, false, nil))
	}
	// Nothing is created on a machine without a setup.
	if _, err := os.Stat(markerPath); errors.Is(err, fs.ErrNotExist) {
		return nil, notInstalled()
	}
	if err := os.MkdirAll(identityLockDir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: creating %s: %w", identityLockDir, err)
	}
	mu, err := openLock(filepath.Join(identityLockDir, "setup.lock"))
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer mu.Close() // unlocks
	if err := flock(mu, unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("sandbox: locking %s: %w", mu.Name(), err)
	}

	m, reasons, err := setupProblems(mode)
	if errors.Is(err, setup.ErrNotInstalled) {
		return nil, notInstalled()
	}
	if err != nil {
		return nil, err
	}
	if len(reasons) > 0 {
		o := wantedOptions(m, mode)
		if !mode.full && m.AllowLocalBinding != o.AllowLocalBinding {
			// Other runs may rely on the installed mode.
			busy, err := openLock(runsLockName(m.AllowLocalBinding))
			if err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
			err = flock(busy, unix.LOCK_EX|unix.LOCK_NB)
			defer busy.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("sandbox: %w: this run needs allow_local_binding=%v but other identity runs are using the installed rules (allow_local_binding=%v), and switching them would change those runs' network; wait for them to end, or use --backend netns",
					ErrUnavailable, o.AllowLocalBinding, m.AllowLocalBinding)
			}
			if err != nil {
				return nil, fmt.Errorf("sandbox: locking %s: %w", busy.Name(), err)
			}
		}
		cmd := setupCommand(false, o.AllowLocalBinding, m.AllowLocalBinding, nil)
		if _, _, err := reconcileSetup(o); err != nil {
			return nil, fmt.Errorf("sandbox: %w: the identity setup does not fit this run (%s) and reconciling it failed: %w; run `%s`",
				ErrUnavailable, strings.Join(reasons, "; "), err, cmd)
		}
		// Never trust a reconcile blindly: the new setup must check out.
		nm, after, err := setupProblems(mode)
		if err != nil {
			return nil, err
		}
		if len(after) > 0 {
			return nil, fmt.Errorf("sandbox: %w: the identity setup still does not fit this run after reconciling it (%s); run `%s`",
				ErrUnavailable, strings.Join(after, "; "), cmd)
		}
		for i, r := range reasons {
			if r == setup.MissingRules { // its advice is what was just done
				reasons[i] = "the firewall rules were missing, as after a reboot"
			}
		}
		fmt.Fprintf(stderr, "sandgate: reconciled the identity setup: %s\n", strings.Join(reasons, "; "))
		m = nm
	}
	s := &identitySetup{marker: m}
	if !mode.full {
		f, err := openLock(runsLockName(m.AllowLocalBinding))
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		// Not contended: a switch takes the exclusive lock only while
		// holding the mutex we hold.
		if err := flock(f, unix.LOCK_SH); err != nil {
			f.Close()
			return nil, fmt.Errorf("sandbox: locking %s: %w", f.Name(), err)
		}
		s.runs = f
	}
	return s, nil
}

// setupProblems returns the installed marker and every reason it cannot
// serve a run in mode: the live state's drift (setup.Status), then the
// local-binding mode. An error means the state could not be read (never
// treated as current).
func setupProblems(mode identityMode) (setup.Marker, []string, error) {
	m, drift, err := setupStatus(setupOptions)
	if errors.Is(err, setup.ErrNotInstalled) {
		return m, nil, err
	}
	if err != nil {
		return m, nil, fmt.Errorf("sandbox: %w: checking the installed identity setup: %w", ErrUnavailable, err)
	}
	if r := modeReason(m, mode); r != "" {
		drift = append(drift, r)
	}
	return m, drift, nil
}

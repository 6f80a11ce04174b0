package setup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sandgate/sandgate/ruleplan"
)

// This file is the setup lease of an identity run, the same on every
// platform: Acquire makes sure the installed setup serves the run (or,
// where the caller may change it, reconciles it, saying so in one
// message), and the Lease keeps the rules the run relies on from being
// switched under it until Release. Runs and reconciles coordinate through
// lock files in a directory only the caller can write (Linux: /run/sandgate,
// cleared at boot; Windows: the state directory): an exclusive lock on
// setup.lock serialises checking and reconciling, and every run of the
// offline user holds a shared lock on the runs file of its local-binding
// mode; switching the mode needs that file exclusively.

// Need is what one identity run needs of the installed setup.
type Need struct {
	// Online: the run uses the online user (--network full), which has no
	// rules, so the offline rules' local-binding mode does not matter.
	Online bool
	// AllowLocalBinding is the local-binding mode the offline user's
	// rules must have.
	AllowLocalBinding bool
}

// UnavailableError says why the installed setup cannot serve a run, and
// which command fixes it: the run must not start. Match it with errors.As;
// errors.Is sees through it to the cause (ErrNotInstalled, a failed
// reconcile's error such as winsec.ErrElevationCancelled).
type UnavailableError struct{ err error }

func (e *UnavailableError) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.err }

func unavailable(format string, args ...any) error {
	return &UnavailableError{fmt.Errorf(format, args...)}
}

// System is the installed setup as a lease sees it. The real one is this
// package's Status and Reconcile; tests fake it.
type System interface {
	// Status returns the marker and every way the live state differs
	// from it (see Status).
	Status(o Options) (Marker, []string, error)
	// Reconcile brings the setup to o (see Reconcile); notify receives
	// any message meant for the user on the way (Windows: why the
	// administrator prompt appears).
	Reconcile(o Options, notify func(msg string)) (Marker, []string, error)
}

type realSystem struct{}

func (realSystem) Status(o Options) (Marker, []string, error) { return Status(o) }

func (realSystem) Reconcile(o Options, notify func(string)) (Marker, []string, error) {
	return reconcileNotify(o, notify)
}

// Leaser hands out leases on the installed setup. The zero value uses the
// product's places and the real setup.
type Leaser struct {
	// Options say where the setup lives (StateDir, EtcDir, NetNS); the
	// names and ports come from the installed marker.
	Options Options
	// LockDir holds the lock files. Empty: /run/sandgate on Linux, the
	// state directory on Windows.
	LockDir string
	// System is the setup to check and reconcile. Nil: the real one.
	System System
}

func (l Leaser) system() System {
	if l.System == nil {
		return realSystem{}
	}
	return l.System
}

func (l Leaser) lockDir() string {
	if l.LockDir == "" {
		return defaultLockDir(l.Options)
	}
	return l.LockDir
}

// Lock file names in the lock directory.
const (
	setupLockName = "setup.lock"
	runsLockALB   = "runs-local-binding.lock"
	runsLockNoALB = "runs-no-local-binding.lock"
)

// runsLock is the file that runs of the offline user hold a shared lock on
// while they rely on rules with local-binding mode alb.
func (l Leaser) runsLock(alb bool) string {
	if alb {
		return filepath.Join(l.lockDir(), runsLockALB)
	}
	return filepath.Join(l.lockDir(), runsLockNoALB)
}

// closeLock closes a lock file (nil: none), which drops its lock.
func closeLock(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// Lease is an installed setup that serves one run, held until Release.
type Lease struct {
	marker Marker
	need   Need
	opts   Options
	runs   *os.File // shared lock on the mode's runs file (nil: none held)
}

// Marker returns the installed setup the run uses.
func (s *Lease) Marker() Marker { return s.marker }

// Covers reports whether the installed rules leave ports open to the run
// (see Covers).
func (s *Lease) Covers(ports []uint16) bool {
	return Covers(s.marker, ports, s.need.AllowLocalBinding)
}

// Account returns the sandbox user the run runs as (the online one for an
// Online need), as the account database has it (see Identity).
func (s *Lease) Account() (Account, error) {
	return Identity(s.opts, s.marker, identityOf(s.need))
}

// identityOf returns the sandbox identity a run with need runs as.
func identityOf(need Need) ruleplan.Identity {
	if need.Online {
		return ruleplan.Online
	}
	return ruleplan.Offline
}

// Release lets the setup change again once no other run uses it. Calling
// it twice is harmless.
func (s *Lease) Release() {
	if s != nil && s.runs != nil {
		s.runs.Close() // unlocks
		s.runs = nil
	}
}

// FixCommand returns the `sandgate setup` command line that installs
// allow_local_binding=alb over a setup whose mode is installedALB (setup
// keeps the installed mode and ports unless told otherwise), with the
// ports given (nil: keep the installed ones), and "sudo " in front when
// sudo is set.
func FixCommand(sudo, alb, installedALB bool, ports []uint16) string {
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
		b.WriteString(" --ports " + ruleplan.FormatPorts(ports))
	}
	return b.String()
}

// wanted returns the setup options a run with need accepts: the installed
// port set (a run takes whichever reserved ports are free) and the run's
// local-binding mode (for an online run, the installed one), with the
// installed names and l's places.
func (l Leaser) wanted(m Marker, need Need) Options {
	o := l.Options
	o.ProxyPorts = slices.Clone(m.ProxyPorts)
	o.AllowLocalBinding = need.AllowLocalBinding
	if need.Online {
		o.AllowLocalBinding = m.AllowLocalBinding
	}
	o.OfflineUser, o.OnlineUser, o.Group = m.OfflineUser, m.OnlineUser, m.Group
	return o
}

// modeReason says why the installed rules' local-binding mode does not fit
// a run with need ("" when it does).
func (l Leaser) modeReason(m Marker, need Need) string {
	o := l.wanted(m, need)
	if need.Online || Covers(m, nil, o.AllowLocalBinding) {
		return ""
	}
	return fmt.Sprintf("allow_local_binding changed from %v to %v", m.AllowLocalBinding, o.AllowLocalBinding)
}

// StaleReasons lists why the installed setup m cannot serve a run with
// need, judging from the marker alone (nil: it can): what a caller that
// cannot read the live state can tell.
func (l Leaser) StaleReasons(m Marker, need Need) []string {
	reasons := Drift(m, l.wanted(m, need))
	if r := l.modeReason(m, need); r != "" && !slices.Contains(reasons, r) {
		reasons = append(reasons, r)
	}
	return reasons
}

// CheckUnprivileged is the check for a caller that can neither reconcile
// the setup nor hold a lease (on Linux, anyone but root): from the marker
// alone, nil when the installed setup fits a run with need, an
// *UnavailableError naming the `sudo sandgate setup` command when it is
// missing or does not fit, and the marker's read error otherwise.
func (l Leaser) CheckUnprivileged(need Need) error {
	path := l.Options.MarkerPath()
	m, err := ReadMarker(path)
	switch {
	case errors.Is(err, ErrNotInstalled):
		return unavailable("%w (no %s): run `%s`", ErrNotInstalled, path, FixCommand(true, need.AllowLocalBinding && !need.Online, false, nil))
	case err != nil:
		return err
	}
	if reasons := l.StaleReasons(m, need); len(reasons) > 0 {
		o := l.wanted(m, need)
		return unavailable("the identity setup does not fit this run (%s): run `%s` to reconcile it",
			strings.Join(reasons, "; "), FixCommand(true, o.AllowLocalBinding, m.AllowLocalBinding, nil))
	}
	return nil
}

// Acquire makes sure that the installed setup serves a run with need: the
// marker says so and the live users and rules match it (System.Status). A
// setup that does not fit is reconciled (System.Reconcile), and notify
// (nil: nobody) is told so in one message without a "sandgate: " prefix;
// a missing setup is an *UnavailableError naming the command to run (on
// Windows, where the caller can always ask for elevation, it is installed
// instead). A run of the offline user holds its mode's rules until
// Release: a run that needs the other mode while such runs are live does
// not switch the rules under them but fails, saying why. The caller must
// be able to reconcile: root on Linux (see CheckUnprivileged otherwise).
func (l Leaser) Acquire(need Need, notify func(msg string)) (*Lease, error) {
	if notify == nil {
		notify = func(string) {}
	}
	markerPath := l.Options.MarkerPath()
	notInstalled := func() error {
		return unavailable("%w (no %s): run `%s` first", ErrNotInstalled, markerPath, FixCommand(false, need.AllowLocalBinding && !need.Online, false, nil))
	}
	// Nothing is created on a machine without a setup.
	if _, err := os.Stat(markerPath); errors.Is(err, fs.ErrNotExist) && !installsOnDemand {
		return nil, notInstalled()
	}
	if err := prepareLockDir(l.lockDir()); err != nil {
		return nil, err
	}
	mu, err := openLock(filepath.Join(l.lockDir(), setupLockName))
	if err != nil {
		return nil, err
	}
	defer closeLock(mu)
	if err := lockExclusive(mu); err != nil {
		return nil, fmt.Errorf("locking %s: %w", mu.Name(), err)
	}

	m, reasons, err := l.problems(need)
	installed := true
	switch {
	case errors.Is(err, ErrNotInstalled) && installsOnDemand:
		installed, reasons = false, []string{"sandgate setup has not been run"}
	case errors.Is(err, ErrNotInstalled):
		return nil, notInstalled()
	case err != nil:
		return nil, err
	}
	if len(reasons) > 0 {
		if m, err = l.reconcile(m, installed, need, reasons, notify); err != nil {
			return nil, err
		}
	}
	s := &Lease{marker: m, need: need, opts: l.Options}
	if !need.Online {
		f, err := openLock(l.runsLock(m.AllowLocalBinding))
		if err != nil {
			return nil, err
		}
		// Not contended: a switch takes the exclusive lock only while
		// holding the mutex we hold.
		if err := lockShared(f); err != nil {
			closeLock(f)
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		s.runs = f
	}
	return s, nil
}

// reconcile brings the setup m (installed: it exists) to what a run with
// need wants, which it does not for reasons, and checks the result.
// notify is told once what was done. The setup mutex is held.
func (l Leaser) reconcile(m Marker, installed bool, need Need, reasons []string, notify func(string)) (Marker, error) {
	o := l.wanted(m, need)
	if installed && !need.Online && m.AllowLocalBinding != o.AllowLocalBinding {
		// Other runs may rely on the installed mode.
		busy, err := openLock(l.runsLock(m.AllowLocalBinding))
		if err != nil {
			return Marker{}, err
		}
		defer closeLock(busy)
		free, err := tryLockExclusive(busy)
		if err != nil {
			return Marker{}, fmt.Errorf("locking %s: %w", busy.Name(), err)
		}
		if !free {
			return Marker{}, unavailable("this run needs allow_local_binding=%v but other identity runs are using the installed rules (allow_local_binding=%v), and switching them would change those runs' network; wait for them to end, or use --backend netns",
				o.AllowLocalBinding, m.AllowLocalBinding)
		}
	}
	cmd := FixCommand(false, o.AllowLocalBinding, m.AllowLocalBinding, nil)
	said := false
	if _, _, err := l.system().Reconcile(o, func(msg string) { said = true; notify(msg) }); err != nil {
		return Marker{}, unavailable("the identity setup does not fit this run (%s) and reconciling it failed: %w; run `%s`",
			strings.Join(reasons, "; "), err, cmd)
	}
	// Never trust a reconcile blindly: the new setup must check out.
	nm, after, err := l.problems(need)
	if err != nil {
		return Marker{}, err
	}
	if len(after) > 0 {
		return Marker{}, unavailable("the identity setup still does not fit this run after reconciling it (%s); run `%s`",
			strings.Join(after, "; "), cmd)
	}
	if !said {
		told := slices.Clone(reasons)
		for i, r := range told {
			if r == MissingRules { // its advice is what was just done
				told[i] = "the firewall rules were missing, as after a reboot"
			}
		}
		notify("reconciled the identity setup: " + strings.Join(told, "; "))
	}
	return nm, nil
}

// problems returns the installed marker and every reason it cannot serve a
// run with need: the live state's drift (System.Status), then the
// local-binding mode. An error means the state could not be read (never
// taken as current); ErrNotInstalled is returned as it is.
func (l Leaser) problems(need Need) (Marker, []string, error) {
	m, drift, err := l.system().Status(l.Options)
	if errors.Is(err, ErrNotInstalled) {
		return m, nil, err
	}
	if err != nil {
		return m, nil, unavailable("checking the installed identity setup: %w", err)
	}
	if r := l.modeReason(m, need); r != "" {
		drift = append(drift, r)
	}
	return m, drift, nil
}

//go:build linux

package setup

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/testnet"
	"github.com/sandgate/sandgate/ruleplan"
)

// fakeSystem is an installed setup that a test describes: Status returns
// its marker and drift; Reconcile records what it was asked for and
// installs the mode asked for, leaving afterDrift.
type fakeSystem struct {
	m          Marker
	drift      []string
	statusErr  error
	failWith   error
	afterDrift []string
	say        string // a message Reconcile gives notify on the way
	asked      []Options
}

func (f *fakeSystem) Status(Options) (Marker, []string, error) {
	return f.m, slices.Clone(f.drift), f.statusErr
}

func (f *fakeSystem) Reconcile(o Options, notify func(string)) (Marker, []string, error) {
	f.asked = append(f.asked, o)
	if f.say != "" {
		notify(f.say)
	}
	if f.failWith != nil {
		return Marker{}, nil, f.failWith
	}
	f.m.AllowLocalBinding = o.AllowLocalBinding
	f.drift = f.afterDrift
	return f.m, []string{"reconciled"}, nil
}

// leaseWorld is a Leaser on a fake setup whose marker file exists, with
// locks in a directory of the test, and the messages it gives.
type leaseWorld struct {
	l    Leaser
	sys  *fakeSystem
	said []string
}

func newLeaseWorld(t *testing.T) *leaseWorld {
	t.Helper()
	base := t.TempDir()
	m := testMarker(t, DefaultPorts(), false, 4001, 4002, 4003, [3]string{"off", "on", "grp"})
	o := Options{StateDir: filepath.Join(base, "state")}
	if err := WriteMarker(o.MarkerPath(), m); err != nil {
		t.Fatal(err)
	}
	sys := &fakeSystem{m: m}
	return &leaseWorld{l: Leaser{Options: o, LockDir: filepath.Join(base, "run"), System: sys}, sys: sys}
}

func (w *leaseWorld) acquire(need Need) (*Lease, error) {
	return w.l.Acquire(need, func(s string) { w.said = append(w.said, s) })
}

func wantUnavailable(t *testing.T, err error, want string) {
	t.Helper()
	var ue *UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want an UnavailableError saying %q", err, want)
	}
}

func TestLeaseNotInstalled(t *testing.T) {
	dir := t.TempDir()
	l := Leaser{Options: Options{StateDir: filepath.Join(dir, "state")}, LockDir: filepath.Join(dir, "run"), System: &fakeSystem{}}
	_, err := l.Acquire(Need{AllowLocalBinding: true}, nil)
	wantUnavailable(t, err, "the identity backend is not set up (no "+l.Options.MarkerPath()+"): run `sandgate setup --allow-local-binding` first")
	if !errors.Is(err, ErrNotInstalled) {
		t.Errorf("%v is not ErrNotInstalled", err)
	}
	if _, err := os.Lstat(l.LockDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock directory was created without a setup: %v", err)
	}
	err = l.CheckUnprivileged(Need{})
	wantUnavailable(t, err, "): run `sudo sandgate setup`")
	if !errors.Is(err, ErrNotInstalled) {
		t.Errorf("%v is not ErrNotInstalled", err)
	}
}

// TestLeaseHoldsMode: a current setup is leased without a reconcile or a
// word; while a run holds it, a run that needs the other mode is refused;
// once it is released, the mode is switched, in one message.
func TestLeaseHoldsMode(t *testing.T) {
	w := newLeaseWorld(t)
	held, err := w.acquire(Need{})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.sys.asked) != 0 || len(w.said) != 0 || held.Marker().OfflineUser != "off" || !held.Covers([]uint16{47100, 47101}) || held.Covers([]uint16{9}) {
		t.Fatalf("current setup: reconciles %v, messages %q, lease %+v", w.sys.asked, w.said, held)
	}
	if fi, err := os.Stat(w.l.LockDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("lock directory: %v, %v", fi, err)
	}
	// An online run does not care about the mode.
	online, err := w.acquire(Need{Online: true, AllowLocalBinding: true})
	if err != nil || len(w.sys.asked) != 0 {
		t.Fatalf("online run: %v, reconciles %v", err, w.sys.asked)
	}
	online.Release()

	_, err = w.acquire(Need{AllowLocalBinding: true})
	wantUnavailable(t, err, "this run needs allow_local_binding=true but other identity runs are using the installed rules (allow_local_binding=false)")
	if len(w.sys.asked) != 0 {
		t.Errorf("the rules were switched under a live run: %v", w.sys.asked)
	}

	held.Release()
	held.Release() // harmless
	s, err := w.acquire(Need{AllowLocalBinding: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if len(w.sys.asked) != 1 || !w.sys.asked[0].AllowLocalBinding || w.sys.asked[0].OfflineUser != "off" || w.sys.asked[0].StateDir != w.l.Options.StateDir ||
		!slices.Equal(w.sys.asked[0].ProxyPorts, DefaultPorts()) {
		t.Errorf("reconcile asked for %+v", w.sys.asked)
	}
	if !slices.Equal(w.said, []string{"reconciled the identity setup: allow_local_binding changed from false to true"}) {
		t.Errorf("messages %q", w.said)
	}
	if !s.Marker().AllowLocalBinding {
		t.Errorf("lease after the switch: %+v", s.Marker())
	}
	// The switched mode is now the one held.
	_, err = w.acquire(Need{})
	wantUnavailable(t, err, "other identity runs are using the installed rules (allow_local_binding=true)")
}

func TestLeaseReconcile(t *testing.T) {
	// Rules lost in a reboot: reconciled, and said so in plain words.
	w := newLeaseWorld(t)
	w.sys.drift = []string{MissingRules}
	s, err := w.acquire(Need{})
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	if !slices.Equal(w.said, []string{"reconciled the identity setup: the firewall rules were missing, as after a reboot"}) {
		t.Errorf("messages %q", w.said)
	}

	// A reconcile that says something itself is not announced again.
	w = newLeaseWorld(t)
	w.sys.drift, w.sys.say = []string{"something changed"}, "asking for elevation"
	if s, err := w.acquire(Need{}); err != nil {
		t.Fatal(err)
	} else {
		s.Release()
	}
	if !slices.Equal(w.said, []string{"asking for elevation"}) {
		t.Errorf("messages %q", w.said)
	}

	// A failed reconcile names the command and keeps its cause.
	w = newLeaseWorld(t)
	cause := errors.New("test failure")
	w.sys.failWith = cause
	_, err = w.acquire(Need{AllowLocalBinding: true})
	wantUnavailable(t, err, "the identity setup does not fit this run (allow_local_binding changed from false to true) and reconciling it failed: test failure; run `sandgate setup --allow-local-binding`")
	if !errors.Is(err, cause) || len(w.said) != 0 {
		t.Errorf("failed reconcile: %v (Is %v), messages %q", err, errors.Is(err, cause), w.said)
	}

	// A reconcile is never trusted blindly.
	w = newLeaseWorld(t)
	w.sys.drift, w.sys.afterDrift = []string{"firewall: a rule differs"}, []string{"firewall: still differs"}
	_, err = w.acquire(Need{})
	wantUnavailable(t, err, "still does not fit this run after reconciling it (firewall: still differs); run `sandgate setup`")

	// A setup that cannot be read is not taken as current.
	w = newLeaseWorld(t)
	w.sys.statusErr = errors.New("unreadable")
	_, err = w.acquire(Need{})
	wantUnavailable(t, err, "checking the installed identity setup: unreadable")
	if len(w.sys.asked) != 0 {
		t.Errorf("reconciled an unreadable setup: %v", w.sys.asked)
	}
}

func TestCheckUnprivileged(t *testing.T) {
	w := newLeaseWorld(t)
	if err := w.l.CheckUnprivileged(Need{}); err != nil {
		t.Errorf("current setup: %v", err)
	}
	wantUnavailable(t, w.l.CheckUnprivileged(Need{AllowLocalBinding: true}),
		"the identity setup does not fit this run (allow_local_binding changed from false to true): run `sudo sandgate setup --allow-local-binding` to reconcile it")
	if err := os.WriteFile(w.l.Options.MarkerPath(), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := w.l.CheckUnprivileged(Need{})
	var ue *UnavailableError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt marker: %v", err)
	}
}

// freePorts returns n loopback ports nothing listens on (as far as the
// kernel knew a moment ago).
func freePorts(t *testing.T, n int) []uint16 {
	t.Helper()
	var out []uint16
	for range n {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, uint16(ln.Addr().(*net.TCPAddr).Port))
		ln.Close()
	}
	slices.Sort(out)
	return out
}

// TestReservePorts: a run takes the first two free reserved ports, marked
// for the input rule, and no more; with fewer than two free it names the
// command that widens the range.
func TestReservePorts(t *testing.T) {
	testnet.RequirePrivileged(t) // SO_MARK needs CAP_NET_ADMIN
	ports := freePorts(t, 4)
	taken, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0]))))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := &Lease{marker: Marker{ProxyPorts: ports}}
	lns, err := s.ReservePorts()
	if err != nil {
		t.Fatal(err)
	}
	var got []uint16
	for _, ln := range lns {
		got = append(got, uint16(ln.Addr().(*net.TCPAddr).Port))
		rc, err := ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var mark int
		var merr error
		rc.Control(func(fd uintptr) { mark, merr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
		if merr != nil || mark != ruleplan.ProxySocketMark {
			t.Errorf("proxy listener %s has SO_MARK %#x (%v), want %#x", ln.Addr(), mark, merr, ruleplan.ProxySocketMark)
		}
	}
	if !slices.Equal(got, ports[1:3]) {
		t.Errorf("ReservePorts took %v, want %v", got, ports[1:3])
	}
	// It stops once it has two: the last port is left for another run.
	if ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[3])))); err != nil {
		t.Errorf("ReservePorts took more than two ports: %v", err)
	} else {
		ln.Close()
	}
	_, err = s.ReservePorts()
	wantUnavailable(t, err, "all 4 reserved proxy ports ("+ruleplan.FormatPorts(ports)+") are in use: each identity run takes two; widen the range with `sandgate setup --ports ")
	closeListeners(lns)
}

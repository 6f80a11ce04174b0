//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandgate/sandgate/internal/testnet"
	"github.com/sandgate/sandgate/sandbox/internal/initproc"
	"github.com/sandgate/sandgate/setup"
)

// The identity backend's privileged tests run in a child process of the
// test started in a network namespace of its own (internal/testnet): the nftables rules, the
// loopback and the abstract unix sockets are private to it. The setup is
// made by package setup, with test-unique names, in a state directory of
// the test and in copies of the account files (setup.Options.EtcDir):
// nothing of the machine changes, and everything goes with the test.

// idNetnsEnv marks the child that runs TestIdentityInNetns.
const idNetnsEnv = "SANDGATE_IDENTITY_TEST_NETNS"

// idConfigEnv carries an idHelperConfig to helpers that call Run.
const idConfigEnv = "SANDGATE_IDENTITY_TEST_CONFIG"

// idHelperConfig points a helper process at the test's setup.
type idHelperConfig struct {
	StateDir string `json:"state_dir"`
	EtcDir   string `json:"etc_dir"`
	LockDir  string `json:"lock_dir"`
	Dir      string `json:"dir"`
	Bin      string `json:"bin"`
	Count    string `json:"count"`
}

// leaser is the Leaser of the test's setup, for Spec.leaser.
func (c idHelperConfig) leaser() *setup.Leaser {
	return &setup.Leaser{Options: setup.Options{StateDir: c.StateDir, EtcDir: c.EtcDir}, LockDir: c.LockDir}
}

// TestIdentityBackend runs TestIdentityInNetns in a child process in a
// network namespace of the test's own.
func TestIdentityBackend(t *testing.T) {
	ns := testnet.NewAnonymous(t) // skips or fails without root
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := []string{"-test.run=^TestIdentityInNetns$", "-test.v", "-test.count=1"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := execCommandContext(ctx, testBinary(), args...)
	cmd.Env = append(os.Environ(), idNetnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ns.Run(cmd); err != nil || !bytes.Contains(out.Bytes(), []byte("--- PASS: TestIdentityInNetns")) {
		t.Fatalf("identity tests in a test-owned network namespace: %v\n%s", err, out.Bytes())
	}
	if testing.Verbose() {
		t.Logf("%s", out.Bytes())
	}
}

// idWorld is the identity setup of TestIdentityInNetns.
type idWorld struct {
	offUID, onUID, gid int
	names              [3]string // offline user, online user, group
	opts               setup.Options
	bin                string // a copy of the test binary the sandbox users can run
	base               string // a directory everyone can search
	work               string // CMD's working directory: root's, mode 0700
	gates              string // where the test drops files CMD waits for
	// leaser is the runs' view of the setup: the test's directories, and
	// the real setup through worldSystem.
	leaser        setup.Leaser
	reconciles    int   // how often a run reconciled the setup
	failReconcile error // when set, a run's reconcile fails with it
	// applying is held by whatever installs the rules in this process:
	// google/nftables numbers sets with a global counter of its own that
	// it does not lock.
	applying sync.Mutex
}

// worldSystem is the real setup (setup.Status, setup.Reconcile) as a lease
// sees it, with the reconciles of the world's runs counted, or failed on
// demand.
type worldSystem struct{ w *idWorld }

func (s worldSystem) Status(o setup.Options) (setup.Marker, []string, error) { return setup.Status(o) }

func (s worldSystem) Reconcile(o setup.Options, _ func(string)) (setup.Marker, []string, error) {
	if s.w.failReconcile != nil {
		return setup.Marker{}, nil, s.w.failReconcile
	}
	s.w.reconciles++
	s.w.applying.Lock()
	defer s.w.applying.Unlock()
	return setup.Reconcile(o)
}

// helperConfig is the configuration of helper processes that call Run.
func (w *idWorld) helperConfig() idHelperConfig {
	return idHelperConfig{StateDir: w.opts.StateDir, EtcDir: w.opts.EtcDir, LockDir: w.leaser.LockDir}
}

// TestIdentityInNetns is the body of TestIdentityBackend: it runs only in
// the child in the test's own namespaces.
func TestIdentityInNetns(t *testing.T) {
	if os.Getenv(idNetnsEnv) == "" {
		// Not a skip: TestIdentityBackend runs this body in its child,
		// inside the namespaces it made, and fails when the body fails.
		return
	}
	w := newIDWorld(t)
	t.Run("LockedDown", w.testLockedDown)
	t.Run("Proxy", w.testProxy)
	t.Run("UnixSockets", w.testUnixSockets)
	t.Run("HostChannels", w.testHostChannels)
	t.Run("UnixSocketByPath", w.testUnixSocketByPath)
	t.Run("FileSystemView", w.testFileSystemView)
	t.Run("InitArgv", w.testInitArgv) // initargv_linux_test.go
	t.Run("TrustClients", w.testTrustClients)
	t.Run("NetworkNone", w.testNetworkNone)
	t.Run("NetworkFull", w.testNetworkFull)
	t.Run("Inspect", w.testInspect)
	t.Run("Ports", w.testPorts)
	t.Run("DirGrant", w.testDirGrant)
	t.Run("Drift", w.testDrift)
	t.Run("Watch", w.testWatch)
	t.Run("NonRoot", w.testNonRoot)
	t.Run("Auto", w.testAuto)
	t.Run("ExitCodesSignalsTerminal", w.testProcess)
	t.Run("NothingOutlivesRun", w.testNothingOutlivesRun)
	t.Run("ParentKilled", w.testParentKilled)
	t.Run("Transparent", w.testTransparent) // late: it gives the namespace a default route
	t.Run("TransparentClients", w.testTransparentClients)
	t.Run("ProxyAuthClients", w.testProxyAuthClients)
	t.Run("NonLocalRejected", w.testNonLocalRejected)
	t.Run("InspectClients", w.testInspectClients) // after Transparent too
}

func newIDWorld(t *testing.T) *idWorld {
	if err := landlockScopingAvailable(); err != nil {
		t.Fatalf("the identity backend cannot run on this kernel: %v", err)
	}
	if err := initproc.LoopbackUp(); err != nil {
		t.Fatal(err)
	}
	base, err := filepath.EvalSymlinks(t.TempDir()) // the paths runs report have none
	if err != nil {
		t.Fatal(err)
	}
	w := &idWorld{base: base}
	for _, d := range []string{filepath.Dir(w.base), w.base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Copies of the account files for setup to add the test users to.
	etc := filepath.Join(w.base, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "shadow", "group", "gshadow", "login.defs"} {
		src := filepath.Join("/etc", f)
		fi, err := os.Stat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, f), data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	privateIDRange(t, etc)
	tag := testnet.UniqueName(6)
	w.names = [3]string{tag + "-off", tag + "-on", tag}
	w.opts = setup.Options{OfflineUser: w.names[0], OnlineUser: w.names[1], Group: w.names[2],
		StateDir: filepath.Join(w.base, "state"), EtcDir: etc}

	// The test binary where the sandbox users can execute it.
	data, err := os.ReadFile(testBinary())
	if err != nil {
		t.Fatal(err)
	}
	w.bin = filepath.Join(w.base, "sandbox.test")
	if err := os.WriteFile(w.bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	w.work = filepath.Join(w.base, "work")
	w.gates = filepath.Join(w.base, "gates")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{w.work, 0o700}, {w.gates, 0o755}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	w.leaser = setup.Leaser{Options: setup.Options{StateDir: w.opts.StateDir, EtcDir: etc}, LockDir: filepath.Join(w.base, "run"), System: worldSystem{w}}

	m, _, err := setup.Install(w.opts)
	if err != nil {
		t.Fatalf("setup.Install: %v", err)
	}
	t.Cleanup(func() {
		if _, err := setup.Uninstall(w.opts); err != nil {
			t.Errorf("setup.Uninstall: %v", err)
		}
	})
	for _, p := range []struct {
		dst *int
		id  string
	}{{&w.offUID, m.OfflineID}, {&w.onUID, m.OnlineID}, {&w.gid, m.GroupID}} {
		if *p.dst, err = strconv.Atoi(p.id); err != nil || *p.dst <= 0 {
			t.Fatalf("marker ids: %+v", m)
		}
	}
	return w
}

// privateIDRange gives the test's copy of login.defs a system id range of
// its own, far above the real one. setup's tests, running at the same time
// on the real account files, take the first free system ids (top-down from
// 999) just as a copy of those files would; a process of theirs would then
// pass for one of this test's users: setup.Uninstall refuses to remove a
// user that has processes, and the survivor checks look for processes by
// uid.
func privateIDRange(t *testing.T, etc string) {
	t.Helper()
	n, err := strconv.ParseUint(randHex(3), 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	lo := 3000000 + 10*(n%100000)
	defs := fmt.Sprintf("\n# sandgate test: a private id range\nSYS_UID_MIN %d\nSYS_UID_MAX %d\nSYS_GID_MIN %d\nSYS_GID_MAX %d\n", lo, lo+9, lo, lo+9)
	f, err := os.OpenFile(filepath.Join(etc, "login.defs"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(defs); err != nil {
		t.Fatal(err)
	}
}

// spec returns a Spec running the helper name (as a sandbox user) in the
// working directory.
func (w *idWorld) spec(name string, args ...string) Spec {
	return Spec{
		Args:    append([]string{w.bin}, args...),
		Env:     append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0"),
		Dir:     w.work,
		Backend: BackendIdentity,
		Network: NetworkNone,
		leaser:  &w.leaser,
	}
}

// gate returns a fresh path for CMD to wait on, and a function creating it.
func (w *idWorld) gate() (string, func()) {
	p := filepath.Join(w.gates, randHex(6))
	return p, func() { os.WriteFile(p, nil, 0o644) }
}

// statusLine returns the value of a /proc/PID/status field.
func statusLine(status, field string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "<missing>"
}

func execCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

func execCommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

//go:build linux

package initproc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// markerEnv makes the test binary, run as CMD, create the file it names.
const markerEnv = "SANDGATE_INITPROC_TEST_MARKER"

func TestMain(m *testing.M) {
	if initproto.IsInit(os.Args) {
		os.Exit(Main(os.Args))
	}
	if p := os.Getenv(markerEnv); p != "" {
		if err := os.WriteFile(p, []byte("CMD ran\n"), 0o644); err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPeerGone(t *testing.T) {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	if err := peerGone(p[0]); err != nil {
		t.Errorf("peer open: %v", err)
	}
	unix.Close(p[1])
	if err := peerGone(p[0]); !errors.Is(err, errParentGone) {
		t.Errorf("peer closed: %v, want errParentGone", err)
	}
}

// TestInitWithoutParent: an init whose parent is already gone when it
// starts (so that the parent-death signal, armed too late, will never
// come) exits without starting CMD. The test stands for that parent: it
// closes its end of the status socket before starting the init, which is
// what the parent's death does.
func TestInitWithoutParent(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") != "" {
			t.Fatal("this test needs root (SANDGATE_REQUIRE_PRIVILEGED is set, so it may not skip)")
		}
		t.Skip("needs root: the init mounts a /proc of its own PID namespace")
	}
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(p[0]) // the parent's end: gone, as with the parent
	initEnd := os.NewFile(uintptr(p[1]), "status")
	defer initEnd.Close()

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "marker")
	args, err := initproto.Args(initproto.Config{Network: initproto.NetFull}, []string{exe})
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        args,
		Env:         append(os.Environ(), markerEnv+"="+marker),
		ExtraFiles:  []*os.File{initEnd},
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL},
	}
	out, err := startAndWait(t, cmd)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 {
		t.Errorf("init without its parent: %v, want exit 125 (output %q)", err, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("CMD ran although the parent was gone")
	}
}

// startAndWait runs cmd with its output captured, killing it after 20s.
func startAndWait(t *testing.T, cmd *exec.Cmd) ([]byte, error) {
	t.Helper()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
		<-done
		t.Fatal("the init did not end")
	}
	return out, err
}

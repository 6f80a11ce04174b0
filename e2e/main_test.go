//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/internal/testnet"
)

// prefix starts the name of everything the tests create outside their own
// process: network namespaces, /etc/netns directories, users, temp dirs.
const prefix = "sgtest-"

var (
	// binDir is a 0755 directory holding the built binaries and the test CA,
	// readable by the unprivileged test user.
	binDir string
	// sandgateBin and probeBin are the built binaries.
	sandgateBin, probeBin string
	// sandgateErr and probeErr record why building failed; tests that need the
	// binary fail with it.
	sandgateErr, probeErr error
	// theWorld is the fake internet, or worldErr why it could not be made.
	theWorld *world
	worldErr error
)

// privileged reports whether the privileged tests can run, and whether they
// must (SANDGATE_REQUIRE_PRIVILEGED set).
func privileged() (can, must bool) {
	_, must = os.LookupEnv("SANDGATE_REQUIRE_PRIVILEGED")
	return os.Geteuid() == 0, must
}

// requireWorld skips the test when it cannot run here and is not required
// to, fails it when it is required but cannot run, and returns the fake
// internet and both binaries otherwise.
func requireWorld(t *testing.T) *world {
	t.Helper()
	can, must := privileged()
	if !can {
		if must {
			t.Fatal("SANDGATE_REQUIRE_PRIVILEGED is set but the e2e tests are not running as root")
		}
		t.Skip("e2e tests need root (set SANDGATE_REQUIRE_PRIVILEGED to make this a failure)")
	}
	if probeErr != nil {
		t.Fatalf("building the probe: %v", probeErr)
	}
	if worldErr != nil {
		t.Fatalf("building the fake internet: %v", worldErr)
	}
	return theWorld
}

// requireSandgate is requireWorld for tests that also run sandgate.
func requireSandgate(t *testing.T) *world {
	t.Helper()
	w := requireWorld(t)
	if sandgateErr != nil {
		t.Fatalf("building sandgate: %v", sandgateErr)
	}
	return w
}

// binBase is where the built binaries go: not under /tmp, which the
// default file system view replaces with a private one, since sandboxed
// commands run the probe from there by its path.
const binBase = "/var/lib"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, rootErr := moduleRoot()
	if rootErr == nil {
		statSources(root)
	}
	if can, _ := privileged(); !can {
		return m.Run()
	}
	if rootErr != nil {
		probeErr, sandgateErr = rootErr, rootErr
		return m.Run()
	}
	removeLeftovers()
	dir, err := os.MkdirTemp(binBase, fmt.Sprintf("%s%d-", prefix, os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	sandgateBin = filepath.Join(dir, "sandgate")
	probeBin = filepath.Join(dir, "probe")
	probeErr = goBuild(root, probeBin, "./e2e/internal/probe")
	if prebuilt := os.Getenv("SANDGATE_E2E_BIN"); prebuilt != "" {
		sandgateErr = copyFile(prebuilt, sandgateBin)
	} else {
		sandgateErr = goBuild(root, sandgateBin, "./cmd/sandgate")
	}
	if probeErr == nil {
		theWorld, worldErr = newWorld(dir)
	}
	code := m.Run()
	if theWorld != nil {
		theWorld.close()
	}
	return code
}

// moduleRoot finds the sandgate module's directory above the working
// directory (go test runs a test in its package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/sandgate/sandgate\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("e2e: the sandgate module is not above the working directory")
		}
		dir = parent
	}
}

// statSources looks at every source file of the module. go test records the
// files a test looks at and reuses a cached result only while they are
// unchanged; the binaries these tests run are built from the whole module,
// which the test binary itself does not import, so without this a change to
// sandgate would not invalidate a cached e2e result.
func statSources(root string) {
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum" {
			_, _ = os.Stat(path)
		}
		return nil
	})
}

// goBuild builds pkg (relative to the module root) as a static binary.
func goBuild(root, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// copyFile copies an executable into place, mode 0755.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// stale reports whether name (prefix, a pid, then anything) belongs to no
// live test run: the pid is gone, or is this process, which has not yet
// created anything.
func stale(name string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	pid, err := strconv.Atoi(rest[:i])
	if err != nil {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}

// removeLeftovers deletes what a crashed earlier run left behind: network
// namespaces, /etc/netns directories, users and temp dirs named sgtest-PID…
// whose PID is no longer running.
func removeLeftovers() {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && stale(f[0]) {
				_ = testnet.Delete(f[0])
			}
		}
	}
	for _, pattern := range []string{"/etc/netns/" + prefix + "*", filepath.Join(os.TempDir(), prefix+"*"), filepath.Join(binBase, prefix+"*")} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if stale(filepath.Base(m)) {
				_ = os.RemoveAll(m)
			}
		}
	}
	if b, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			name, _, _ := strings.Cut(line, ":")
			if stale(name) {
				_ = exec.Command("userdel", "-f", name).Run()
			}
		}
	}
}

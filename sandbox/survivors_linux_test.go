//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/testnet"
)

// Nothing of a run outlives sandgate, however sandgate dies: the tests
// here start a sandgate parent (the test binary as helper "run-parent",
// calling Run) whose CMD starts a child and sleeps, kill the parent with
// SIGKILL and then look through /proc, as ps would, for any process of
// the run: in the run's PID namespace, or (identity backend) of the
// sandbox user.

// runParentHelper is helper "run-parent": a sandgate parent whose CMD is
// this binary as helper "ns-sleeper". With idConfigEnv set it runs an
// identity run in that setup, else a netns run.
func runParentHelper() int {
	bin, err := os.Executable()
	if err != nil {
		fmt.Println("executable:", err)
		return 3
	}
	spec := Spec{Args: []string{bin}, Env: append(os.Environ(), helperEnv+"=ns-sleeper"), Network: NetworkNone,
		Backend: BackendNetns, Executable: bin, Stdin: eofReader{}}
	if raw := os.Getenv(idConfigEnv); raw != "" {
		var c idHelperConfig
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			fmt.Println("config:", err)
			return 3
		}
		spec.Backend, spec.Dir, spec.leaser = BackendIdentity, c.Dir, c.leaser()
	}
	res, err := Run(context.Background(), spec)
	fmt.Printf("run ended: %+v %v\n", res, err)
	return 4
}

// nsSleeperHelper is helper "ns-sleeper": CMD of a run-parent. It starts a
// child, says "ready PIDNS UID" and sleeps.
func nsSleeperHelper() int {
	bin, err := os.Executable()
	if err != nil {
		fmt.Println("executable:", err)
		return 3
	}
	child := exec.Command(bin)
	child.Env = append(os.Environ(), helperEnv+"=hang")
	if err := child.Start(); err != nil {
		fmt.Println("child:", err)
		return 3
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		fmt.Println("pid namespace:", err)
		return 3
	}
	fmt.Printf("ready %s %d\n", ns, os.Getuid())
	time.Sleep(time.Hour)
	return 0
}

// procInfo is one process as /proc shows it.
type procInfo struct {
	pid       int
	state     string // R, S, Z, ...
	uids      []string
	pidNS     string // "" when unreadable (a zombie has none)
	cmdline   string
	parentPID string
	nsPID     string // its pid in its own (innermost) PID namespace
}

func (p procInfo) String() string {
	return fmt.Sprintf("pid %d ppid %s state %s uids %v %s %q", p.pid, p.parentPID, p.state, p.uids, p.pidNS, p.cmdline)
}

// processes lists every process of the host's PID namespace.
func processes() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			continue // gone meanwhile
		}
		p := procInfo{pid: pid}
		for _, l := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(l, ":")
			switch k {
			case "State":
				p.state, _, _ = strings.Cut(strings.TrimSpace(v), " ")
			case "Uid":
				p.uids = strings.Fields(v)
			case "PPid":
				p.parentPID = strings.TrimSpace(v)
			case "NSpid":
				if f := strings.Fields(v); len(f) > 0 {
					p.nsPID = f[len(f)-1]
				}
			}
		}
		p.pidNS, _ = os.Readlink(filepath.Join(dir, "ns", "pid"))
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		p.cmdline = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		out = append(out, p)
	}
	return out
}

// runProcesses are the processes that are alive (not zombies) in the PID
// namespace pidNS or, when uid >= 0, have uid as any of their uids.
func runProcesses(pidNS string, uid int) []procInfo {
	var out []procInfo
	for _, p := range processes() {
		mine := p.pidNS == pidNS
		for _, u := range p.uids {
			mine = mine || uid >= 0 && u == strconv.Itoa(uid)
		}
		if mine && p.state != "Z" {
			out = append(out, p)
		}
	}
	return out
}

// leftBehind are the processes of a run that ended (see runProcesses) but
// for its PID namespace's init, which may still be exiting when the run
// has ended on its report of CMD's end (initproto.Exited).
func leftBehind(pidNS string, uid int) []procInfo {
	var out []procInfo
	for _, p := range runProcesses(pidNS, uid) {
		if p.pidNS != pidNS || p.nsPID != "1" {
			out = append(out, p)
		}
	}
	return out
}

// sandboxRunFiles is sandboxRun with CMD's output in files, as sandgate's
// own streams are: the run then ends on the init's report of CMD's end,
// and does not wait for the init's reaping (see initSandbox.mustReap).
func sandboxRunFiles(t *testing.T, spec Spec) outcome {
	t.Helper()
	dir := t.TempDir()
	files := make([]*os.File, 2)
	for i, name := range []string{"stdout", "stderr"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	spec.Stdout, spec.Stderr = files[0], files[1]
	o := sandboxRun(t, spec)
	for i, dst := range []*string{&o.stdout, &o.stderr} {
		b, err := os.ReadFile(files[i].Name())
		if err != nil {
			t.Fatal(err)
		}
		*dst = string(b)
	}
	return o
}

// checkNoSurvivorsAtReturn runs spec with a CMD that leaves two
// background processes behind and exits 3 (files as its streams, so that
// the run ends on the init's report) and fails unless Run returns 3 at
// once and, as it returns, no process of the run is alive but the init of
// its PID namespace: none in that namespace and, when uid >= 0, none of
// that uid.
func checkNoSurvivorsAtReturn(t *testing.T, spec Spec, uid int) {
	t.Helper()
	// Only root can see the namespaces of the sandbox's processes, which
	// are not dumpable.
	testnet.RequirePrivileged(t)
	spec.Args = []string{"sh", "-c", "readlink /proc/self/ns/pid; sleep 100 & sleep 100 & exit 3"}
	start := time.Now()
	o := sandboxRunFiles(t, spec)
	took := time.Since(start)
	pidNS := strings.TrimSpace(o.stdout)
	left := leftBehind(pidNS, uid)
	if o.err != nil || o.res.ExitCode != 3 || !strings.HasPrefix(pidNS, "pid:[") {
		t.Fatalf("run: %+v %v %q %q", o.res, o.err, o.stdout, o.stderr)
	}
	if len(left) != 0 {
		killAndReap(t, pidNS, uid, map[int]bool{})
		t.Fatalf("processes of the run were alive when Run returned:\n%v", left)
	}
	if took > 30*time.Second {
		t.Errorf("Run took %v: it waited for what CMD left", took)
	}
}

// TestNoSurvivorsAtReturn: a netns run ends before its init has exited,
// and what CMD left is gone by then.
func TestNoSurvivorsAtReturn(t *testing.T) {
	for _, network := range []Network{NetworkNone, NetworkProxy} {
		t.Run(network.String(), func(t *testing.T) {
			checkNoSurvivorsAtReturn(t, Spec{Network: network, Gate: denyAllGate(), Transparent: network == NetworkProxy}, -1)
		})
	}
}

// checkNothingOutlivesSandgate starts bin as a sandgate parent (env says
// which backend), waits until its CMD and CMD's child run, kills the
// parent with SIGKILL and fails unless, within a few seconds, no process
// of the run is left: none in its PID namespace and, when uid >= 0, none
// of that uid.
func checkNothingOutlivesSandgate(t *testing.T, bin string, env []string, uid int) {
	t.Helper()
	// Only root can see the namespaces of the sandbox's processes, which
	// are not dumpable.
	testnet.RequirePrivileged(t)
	// Orphans of the run come to this process, which reaps them: the
	// machine's own init may not.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	seen := map[int]bool{} // the run's processes: this test reaps only those
	defer reapZombies(seen)

	parent := exec.Command(bin)
	parent.Env = append(env, helperEnv+"=run-parent", "GORACE=atexit_sleep_ms=0")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	parent.Stderr = os.Stderr
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "ready ") {
				lines <- s.Text()
			}
			t.Logf("run-parent: %s", s.Text())
		}
		close(lines)
	}()
	var ready string
	select {
	case ready = <-lines:
	case <-time.After(30 * time.Second):
	}
	f := strings.Fields(ready)
	if len(f) != 3 {
		parent.Process.Kill()
		parent.Wait()
		t.Fatalf("CMD did not get ready (%q)", ready)
	}
	pidNS := f[1]
	t.Cleanup(func() { killAndReap(t, pidNS, uid, seen) })
	before := runProcesses(pidNS, uid)
	if len(before) < 3 {
		t.Fatalf("the check cannot see the run: %d processes (%v), want the init, CMD and its child", len(before), before)
	}
	for _, p := range before {
		seen[p.pid] = true
	}

	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	parent.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reapZombies(seen)
		left := runProcesses(pidNS, uid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after sandgate was killed, processes of its run are still alive:\n%v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reapZombies reaps the processes of pids that died as orphans given to
// this process (their subreaper), leaves every other child alone, and
// returns how many it reaped.
func reapZombies(pids map[int]bool) int {
	me := strconv.Itoa(os.Getpid())
	n := 0
	for _, p := range processes() {
		if pids[p.pid] && p.parentPID == me && p.state == "Z" {
			var ws unix.WaitStatus
			if got, _ := unix.Wait4(p.pid, &ws, unix.WNOHANG, nil); got == p.pid {
				n++
			}
		}
	}
	return n
}

// killAndReap kills what a failed test left of a run and waits, bounded,
// until it is gone (reaping the orphans among seen that came to this
// process), so that the test's setup can be removed.
func killAndReap(t *testing.T, pidNS string, uid int, seen map[int]bool) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := runProcesses(pidNS, uid)
		for _, p := range left {
			seen[p.pid] = true
			unix.Kill(p.pid, unix.SIGKILL)
		}
		if reapZombies(seen) == 0 && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("could not kill what the run left: %v", left)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNothingOutlivesSandgate: kill -9 of sandgate during a netns run.
func TestNothingOutlivesSandgate(t *testing.T) {
	checkNothingOutlivesSandgate(t, testBinary(), os.Environ(), -1)
}

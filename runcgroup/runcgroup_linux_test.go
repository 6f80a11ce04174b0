//go:build linux

package runcgroup

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandgate/sandgate/internal/testnet"
)

func TestCreateStartRemove(t *testing.T) {
	testnet.RequirePrivileged(t)
	parent := testnet.UniqueName(8)
	g, err := Create(parent, "run-")
	if err != nil {
		t.Fatal(err)
	}
	mount, root, err := cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(filepath.Join(mount, parent)); err != nil {
			t.Errorf("removing the test's parent cgroup: %v", err)
		}
	})
	removed := false
	defer func() {
		if !removed {
			g.Remove()
		}
	}()
	var st syscall.Stat_t
	if err := syscall.Stat(g.Path, &st); err != nil || st.Ino != g.ID {
		t.Errorf("stat %s: inode %d, %v; ID %d", g.Path, st.Ino, err, g.ID)
	}
	if want := depth(root) + 2; g.Level != want || !strings.HasPrefix(filepath.Base(g.Path), "run-") {
		t.Errorf("group %+v: want level %d", g, want)
	}
	// A process started into the group is in it, and so is its child.
	cmd := exec.Command("sh", "-c", "cat /proc/self/cgroup; echo ready; sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		out.WriteString(sc.Text() + "\n")
	}
	rel := strings.TrimPrefix(g.Path, mount)
	if !strings.Contains(out.String(), "0::"+filepath.Join(root, rel)+"\n") {
		t.Errorf("the process's cgroups:\n%s\nwant 0::%s", out.String(), rel)
	}
	procs := func() string {
		b, _ := os.ReadFile(filepath.Join(g.Path, "cgroup.procs"))
		return strings.TrimSpace(string(b))
	}
	for i := 0; i < 1000 && strings.Count(procs(), "\n") < 1; i++ {
		time.Sleep(2 * time.Millisecond)
	}
	if n := strings.Count(procs(), "\n") + 1; n != 2 {
		t.Errorf("cgroup.procs has %d processes (%q), want the shell and its sleep", n, procs())
	}
	// Remove kills what is left.
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	removed = true
	if _, err := os.Stat(g.Path); !os.IsNotExist(err) {
		t.Errorf("after Remove, %s: %v", g.Path, err)
	}
}

func TestCreateRefusesOddParents(t *testing.T) {
	testnet.RequirePrivileged(t)
	for _, p := range []string{"", "/abs", "../up", "a/../../b"} {
		if g, err := Create(p, "x-"); err == nil {
			g.Remove()
			t.Errorf("Create(%q) succeeded", p)
		}
	}
}

func TestDepth(t *testing.T) {
	for p, want := range map[string]uint32{"/": 0, ".": 0, "": 0, "a": 1, "/a/b": 2, "a//b/": 2} {
		if got := depth(p); got != want {
			t.Errorf("depth(%q) = %d, want %d", p, got, want)
		}
	}
}

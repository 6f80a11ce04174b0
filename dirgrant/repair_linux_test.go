//go:build linux

package dirgrant

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// holderEnv makes the test binary a grant holder (see TestMain):
// "RECORDS DIR UID GID [keep]". A holder grants, prints "granted", and
// then waits for its standard input to close before releasing, except with
// keep, which releases at once with keep set.
const holderEnv = "SANDGATE_DIRGRANT_TEST_HOLDER"

func TestMain(m *testing.M) {
	if v := os.Getenv(holderEnv); v != "" {
		os.Exit(holdGrant(strings.Fields(v)))
	}
	os.Exit(m.Run())
}

func holdGrant(args []string) int {
	if len(args) < 4 {
		fmt.Println("bad holder arguments", args)
		return 2
	}
	uid, _ := strconv.ParseUint(args[2], 10, 32)
	gid, _ := strconv.ParseUint(args[3], 10, 32)
	g, err := Records{Dir: args[0]}.Grant(args[1], Grantee{UID: uint32(uid), GID: uint32(gid)})
	if err != nil {
		fmt.Println("grant:", err)
		return 1
	}
	fmt.Printf("granted %v\n", g.Recorded())
	keep := len(args) > 4 && args[4] == "keep"
	if !keep {
		io.Copy(io.Discard, os.Stdin)
	}
	if err := g.Release(keep, func(string, ...any) {}); err != nil {
		fmt.Println("release:", err)
		return 1
	}
	return 0
}

// holder is a child process holding a grant.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startHolder starts a holder of a grant on dir and waits until it holds
// it. The holder is killed when the test ends.
func startHolder(t *testing.T, recs Records, dir string, uid, gid uint32, extra ...string) *holder {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+strings.Join(append([]string{recs.Dir, dir, strconv.Itoa(int(uid)), strconv.Itoa(int(gid))}, extra...), " "))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "granted true\n" {
		t.Fatalf("holder of %s: %q, %v", dir, line, err)
	}
	return &holder{cmd: cmd, stdin: stdin}
}

// kill ends the holder with SIGKILL, as a crash would.
func (h *holder) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
}

// finish lets the holder release its grant and exit.
func (h *holder) finish(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
}

// workDir makes a directory of mode 0750 (with the ACL prev, when not nil)
// under base, whose path has no symlinks.
func workDir(t *testing.T, base, name string, prev []byte) string {
	t.Helper()
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if prev != nil {
		if err := unix.Setxattr(dir, XattrName, prev, 0); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				t.Skipf("no POSIX ACLs on %s", dir)
			}
			t.Fatal(err)
		}
	}
	return dir
}

// TestRepairAfterKill: a grant whose only holder was killed is found by
// Leftovers and taken back by Repair, called from another working
// directory, byte for byte; a grant a live run holds is left alone.
func TestRepairAfterKill(t *testing.T) {
	const uid, gid = 4000211, 4000212
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	recs := Records{Dir: filepath.Join(base, "grants")}
	prev := ACL{{TagUserObj, 7, UndefinedID}, {TagUser, 7, 4000300}, {TagGroupObj, 5, UndefinedID}, {TagMask, 5, UndefinedID}, {TagOther, 0, UndefinedID}}.Encode()
	crashed := workDir(t, base, "crashed", prev)
	plain := workDir(t, base, "plain", nil)
	live := workDir(t, base, "live", nil)

	var dead []*holder
	for _, d := range []string{crashed, plain} {
		dead = append(dead, startHolder(t, recs, d, uid, gid))
	}
	running := startHolder(t, recs, live, uid, gid)
	granted := getXattr(t, live)
	for _, d := range []string{crashed, plain, live} {
		if a, err := ParseACL(getXattr(t, d)); err != nil || !a.Allows(0, 0, uid, gid, PermRWX) {
			t.Fatalf("%s not granted: %v %v", d, a, err)
		}
	}
	if lo, err := recs.Leftovers(); err != nil || len(lo) != 0 {
		t.Fatalf("Leftovers while every holder lives = %v, %v", lo, err)
	}
	for _, h := range dead {
		h.kill(t)
	}

	lo, err := recs.Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	dirs := func(ls []Leftover) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Dir)
		}
		slices.Sort(out)
		return out
	}
	if got := dirs(lo); !slices.Equal(got, []string{crashed, plain}) {
		t.Fatalf("Leftovers = %v, want %s and %s", lo, crashed, plain)
	}
	if !strings.Contains(lo[0].String(), "did not end cleanly") {
		t.Errorf("Leftover.String() = %q", lo[0])
	}
	if a, err := ParseACL(getXattr(t, crashed)); err != nil || !a.Allows(0, 0, uid, gid, PermRWX) {
		t.Fatalf("Leftovers changed the ACL of %s: %v %v", crashed, a, err)
	}

	elsewhere := filepath.Join(base, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(elsewhere)
	fixed, err := recs.Repair(func(f string, a ...any) { t.Errorf("unexpected log: "+f, a...) })
	if err != nil {
		t.Fatal(err)
	}
	if got := dirs(fixed); !slices.Equal(got, []string{crashed, plain}) {
		t.Errorf("Repair repaired %v, want %s and %s", fixed, crashed, plain)
	}
	if x := getXattr(t, crashed); !bytes.Equal(x, prev) || modeOfDir(t, crashed) != 0o750 {
		t.Errorf("%s after Repair: ACL %x mode %o, want %x mode 750", crashed, x, modeOfDir(t, crashed), prev)
	}
	if x := getXattr(t, plain); x != nil || modeOfDir(t, plain) != 0o750 {
		t.Errorf("%s after Repair: ACL %x mode %o, want none, 750", plain, x, modeOfDir(t, plain))
	}
	if x := getXattr(t, live); !bytes.Equal(x, granted) {
		t.Errorf("Repair touched the live grant on %s: %x, was %x", live, x, granted)
	}
	for _, l := range fixed {
		if _, err := os.Lstat(l.Record); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("record %s left after Repair: %v", l.Record, err)
		}
	}
	if lo, err := recs.Leftovers(); err != nil || len(lo) != 0 {
		t.Errorf("Leftovers after Repair = %v, %v", lo, err)
	}

	// The live run still ends as before, and a new grant on a repaired
	// directory works (its record was removed under the lock).
	running.finish(t)
	if x := getXattr(t, live); x != nil || modeOfDir(t, live) != 0o750 {
		t.Errorf("%s after its run: ACL %x mode %o", live, x, modeOfDir(t, live))
	}
	g, err := recs.Grant(plain, Grantee{UID: uid, GID: gid})
	if err != nil || !g.Recorded() {
		t.Fatalf("Grant after Repair: %+v, %v", g, err)
	}
	if err := g.Release(false, nil); err != nil {
		t.Fatal(err)
	}
	if x := getXattr(t, plain); x != nil {
		t.Errorf("%s after a grant following Repair: %x", plain, x)
	}
}

// TestRepairKeptGrant: a grant that a run asked to keep, whose last holder
// was killed, is a leftover; Repair forgets the record and keeps the grant.
func TestRepairKeptGrant(t *testing.T) {
	const uid, gid = 4000221, 4000222
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	recs := Records{Dir: filepath.Join(base, "grants")}
	dir := workDir(t, base, "work", nil)
	first := startHolder(t, recs, dir, uid, gid)
	keeper := startHolder(t, recs, dir, uid, gid, "keep")
	if err := keeper.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	first.kill(t)
	lo, err := recs.Leftovers()
	if err != nil || len(lo) != 1 || !lo[0].Kept || lo[0].Dir != dir {
		t.Fatalf("Leftovers = %v, %v; want one kept grant on %s", lo, err, dir)
	}
	if !strings.Contains(lo[0].String(), "kept") {
		t.Errorf("Leftover.String() = %q", lo[0])
	}
	kept := getXattr(t, dir)
	if _, err := recs.Repair(nil); err != nil {
		t.Fatal(err)
	}
	if x := getXattr(t, dir); !bytes.Equal(x, kept) || x == nil {
		t.Errorf("Repair took back a kept grant: %x, was %x", x, kept)
	}
	if ents, err := os.ReadDir(recs.Dir); err != nil || len(ents) != 0 {
		t.Errorf("records after Repair: %v, %v", ents, err)
	}
}

// TestRecordsTrusted: records in a directory others can write are not
// trusted (Repair restores, as root, what they say).
func TestRecordsTrusted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "grants")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	recs := Records{Dir: dir}
	if _, err := recs.Leftovers(); err == nil || !strings.Contains(err.Error(), "writable by nobody else") {
		t.Errorf("Leftovers in a world-writable directory: %v", err)
	}
	if _, err := recs.Repair(nil); err == nil {
		t.Error("Repair trusted a world-writable records directory")
	}
	if lo, err := (Records{Dir: filepath.Join(dir, "missing")}).Leftovers(); err != nil || lo != nil {
		t.Errorf("Leftovers without a records directory = %v, %v", lo, err)
	}
}

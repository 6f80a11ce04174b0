//go:build linux

package dirgrant

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// getXattr returns dir's access ACL attribute (nil: none).
func getXattr(t *testing.T, dir string) []byte {
	t.Helper()
	fd, _, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	raw, err := getACL(fd)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func modeOfDir(t *testing.T, dir string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestDirGrant(t *testing.T) {
	recs := Records{Dir: filepath.Join(t.TempDir(), "grants")}
	const uid, gid = 4000201, 4000202
	nolog := func(string, ...any) {}
	tmp, err := filepath.EvalSymlinks(t.TempDir()) // Grant takes paths without symlinks
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "work")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil { // whatever the umask
		t.Fatal(err)
	}

	// Two runs share one grant; the last to leave restores the exact
	// previous state (no attribute, mode 0750).
	g1, err := recs.Grant(dir, Grantee{UID: uid, GID: gid})
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("no POSIX ACLs on %s", dir)
		}
		t.Fatal(err)
	}
	raw := getXattr(t, dir)
	a, err := ParseACL(raw)
	if err != nil || !a.Allows(0, 0, uid, gid, PermRWX) {
		t.Fatalf("after the grant: %v %v", a, err)
	}
	g2, err := recs.Grant(dir, Grantee{UID: uid, GID: gid})
	if err != nil {
		t.Fatal(err)
	}
	if err := g1.Release(false, nolog); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(getXattr(t, dir), raw) {
		t.Error("the first run to leave took the grant back while another run holds it")
	}
	if err := g2.Release(false, nolog); err != nil {
		t.Fatal(err)
	}
	if x := getXattr(t, dir); x != nil || modeOfDir(t, dir) != 0o750 {
		t.Errorf("after the last run: attribute %x, mode %o; want none, 750", x, modeOfDir(t, dir))
	}

	// A previous ACL comes back byte for byte.
	prev := ACL{{TagUserObj, 7, UndefinedID}, {TagUser, 7, 4000300}, {TagGroupObj, 5, UndefinedID}, {TagMask, 5, UndefinedID}, {TagOther, 0, UndefinedID}}.Encode()
	if err := unix.Setxattr(dir, XattrName, prev, 0); err != nil {
		t.Fatal(err)
	}
	g, err := recs.Grant(dir, Grantee{UID: uid, GID: gid})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Release(false, nolog); err != nil {
		t.Fatal(err)
	}
	if x := getXattr(t, dir); !bytes.Equal(x, prev) {
		t.Errorf("previous ACL not restored: %x, want %x", x, prev)
	}
	if err := unix.Removexattr(dir, XattrName); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}

	// A grant that a run asked to keep stays, and a later run does not
	// take it back.
	g, err = recs.Grant(dir, Grantee{UID: uid, GID: gid})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Release(true, nolog); err != nil {
		t.Fatal(err)
	}
	kept := getXattr(t, dir)
	if kept == nil {
		t.Fatal("kept grant is gone")
	}
	g, err = recs.Grant(dir, Grantee{UID: uid, GID: gid})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Release(false, nolog); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(getXattr(t, dir), kept) {
		t.Error("a later run took back a kept grant")
	}
	if err := unix.Removexattr(dir, XattrName); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}

	// The owner changed the ACL during the run: only our entry goes.
	g, err = recs.Grant(dir, Grantee{UID: uid, GID: gid})
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := ParseACL(getXattr(t, dir))
	cur = append(cur, Entry{TagUser, 6, 4000301})
	SortACL(cur)
	if err := unix.Setxattr(dir, XattrName, cur.Encode(), 0); err != nil {
		t.Fatal(err)
	}
	var logged []string
	if err := g.Release(false, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }); err != nil {
		t.Fatal(err)
	}
	after, err := ParseACL(getXattr(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(after, func(e Entry) bool { return e.Tag == TagGroup && e.ID == gid }) ||
		!slices.ContainsFunc(after, func(e Entry) bool { return e.Tag == TagUser && e.ID == 4000301 }) || len(logged) != 1 {
		t.Errorf("after a concurrent change: %v (log %q)", after, logged)
	}
	_ = unix.Removexattr(dir, XattrName)

	// A directory the user can already use needs no grant (and no record).
	open := filepath.Join(tmp, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	g, err = recs.Grant(open, Grantee{UID: uid, GID: gid})
	if err != nil || g.Recorded() || getXattr(t, open) != nil {
		t.Errorf("world-writable directory: grant %+v, %v, attribute %x", g, err, getXattr(t, open))
	}
}

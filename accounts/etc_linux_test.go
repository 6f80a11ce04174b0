//go:build linux

package accounts

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	samplePasswd = `root:x:0:0:root:/root:/bin/bash
# a comment that must survive
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
svc:x:300:300:a service:/nonexistent:/usr/sbin/nologin
+@nisusers
`
	sampleShadow = `root:*:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
svc:!:19000::::::
`
	sampleGroup = `root:x:0:
daemon:x:1:
svc:x:300:svc,other
`
	sampleGshadow = `root:*::
daemon:*::
svc:!:svc:svc,other
`
	sampleLoginDefs = `# test
SYS_UID_MIN   200
SYS_UID_MAX   300
SYS_GID_MIN   250
SYS_GID_MAX   300
UID_MIN 1000
`
)

// fakeEtc writes the sample databases to a temporary directory.
func fakeEtc(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"passwd": samplePasswd, "shadow": sampleShadow, "group": sampleGroup,
		"gshadow": sampleGshadow, "login.defs": sampleLoginDefs,
	} {
		mode := os.FileMode(0o644)
		if strings.Contains(name, "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAccountDatabaseEditing(t *testing.T) {
	etc := fakeEtc(t)
	db, err := Read(etc, true)
	if err != nil {
		t.Fatal(err)
	}
	if db.ids != (IDRanges{200, 300, 250, 300}) {
		t.Fatalf("id ranges %+v, want SYS_UID 200-300, SYS_GID 250-300", db.ids)
	}
	gid, err := db.AddGroup("sgtest-grp")
	if err != nil {
		t.Fatal(err)
	}
	if gid != 299 { // 300 is taken; system ids are taken from the top
		t.Errorf("new gid %d, want 299", gid)
	}
	uid1, err := db.AddUser("sgtest-off", gid, "/var/lib/sandgate/home/sgtest-off", "offline")
	if err != nil {
		t.Fatal(err)
	}
	uid2, err := db.AddUser("sgtest-on", gid, "/var/lib/sandgate/home/sgtest-on", "online")
	if err != nil {
		t.Fatal(err)
	}
	if uid1 != 299 || uid2 != 298 {
		t.Errorf("new uids %d, %d; want 299, 298", uid1, uid2)
	}
	if err := db.Write(false); err != nil {
		t.Fatal(err)
	}

	passwd := readFile(t, filepath.Join(etc, "passwd"))
	wantLine := "sgtest-off:x:299:299:offline:/var/lib/sandgate/home/sgtest-off:" + NoLoginShell()
	if !strings.Contains(passwd, wantLine+"\n") {
		t.Errorf("passwd lacks %q:\n%s", wantLine, passwd)
	}
	if !strings.HasSuffix(passwd, "+@nisusers\n") || !strings.Contains(passwd, "# a comment that must survive\n") {
		t.Errorf("passwd lost its comment or its NIS line is no longer last:\n%s", passwd)
	}
	shadow := readFile(t, filepath.Join(etc, "shadow"))
	if !strings.Contains(shadow, "\nsgtest-off:!:") || !strings.Contains(shadow, "\nsgtest-on:!:") {
		t.Errorf("shadow lacks locked entries:\n%s", shadow)
	}
	if g := readFile(t, filepath.Join(etc, "group")); !strings.Contains(g, "sgtest-grp:x:299:\n") {
		t.Errorf("group lacks the new group:\n%s", g)
	}
	if g := readFile(t, filepath.Join(etc, "gshadow")); !strings.Contains(g, "sgtest-grp:!::\n") {
		t.Errorf("gshadow lacks the new group:\n%s", g)
	}
	for name, mode := range map[string]os.FileMode{"passwd": 0o644, "shadow": 0o640, "group": 0o644, "gshadow": 0o640} {
		st, err := os.Stat(filepath.Join(etc, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s has mode %04o after the rewrite, want %04o", name, st.Mode().Perm(), mode)
		}
		if st.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
			t.Errorf("%s changed owner", name)
		}
		if backup := readFile(t, filepath.Join(etc, name+"-")); strings.Contains(backup, "sgtest") {
			t.Errorf("the backup %s- holds the new content", name)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(etc, ".*sandgate*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// Adoption rules.
	db, err = Read(etc, true)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sgtest-off": "", "svc": "", "root": "uid 0", "daemon": "not a system uid"} {
		u, ok, err := db.LookupUser(name)
		if err != nil || !ok {
			t.Fatalf("lookup %s: %v %v", name, ok, err)
		}
		got := db.NotAdoptable(u)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("notOurs(%s) = %q, want %q", name, got, want)
		}
	}
	for _, c := range []struct {
		u    User
		want string
	}{
		{User{Name: "x", UID: 250, Password: "!", Shell: "/bin/bash"}, "allows logins"},
		{User{Name: "x", UID: 250, Password: "$6$salt$hash", Shell: "/usr/sbin/nologin"}, "usable password"},
		{User{Name: "x", UID: 250, Password: "", Shell: "/bin/false"}, "usable password"},
		{User{Name: "x", UID: 250, Password: "*", Shell: "/bin/false"}, ""},
	} {
		if got := db.NotAdoptable(c.u); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("notOurs(%+v) = %q, want %q", c.u, got, c.want)
		}
	}

	// Removing restores the original content.
	db.RemoveUser("sgtest-off")
	db.RemoveUser("sgtest-on")
	db.RemoveGroup("sgtest-grp")
	db.RemoveUser("other") // a member of svc's group in group and gshadow
	if err := db.Write(true); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(etc, "passwd")); got != samplePasswd {
		t.Errorf("passwd after removal:\n%s\nwant:\n%s", got, samplePasswd)
	}
	if got := readFile(t, filepath.Join(etc, "shadow")); got != sampleShadow {
		t.Errorf("shadow after removal:\n%s", got)
	}
	if got := readFile(t, filepath.Join(etc, "group")); got != strings.Replace(sampleGroup, "svc,other", "svc", 1) {
		t.Errorf("group after removal:\n%s", got)
	}
	if got := readFile(t, filepath.Join(etc, "gshadow")); got != strings.Replace(sampleGshadow, "svc,other", "svc", 1) {
		t.Errorf("gshadow after removal:\n%s", got)
	}
}

func TestIDRanges(t *testing.T) {
	dir := t.TempDir()
	if r := readIDRanges(filepath.Join(dir, "missing")); r != (IDRanges{100, 999, 100, 999}) {
		t.Errorf("without login.defs: %+v, want 100-999", r)
	}
	p := filepath.Join(dir, "login.defs")
	os.WriteFile(p, []byte("UID_MIN 500\nGID_MIN   600\n#SYS_UID_MIN 5\n"), 0o644)
	if r := readIDRanges(p); r != (IDRanges{100, 499, 100, 599}) {
		t.Errorf("with UID_MIN 500, GID_MIN 600: %+v", r)
	}
	used := map[uint32]bool{999: true, 998: true}
	if id, err := freeID(used, 100, 999, "user"); err != nil || id != 997 {
		t.Errorf("freeID = %d, %v; want 997", id, err)
	}
	if _, err := freeID(map[uint32]bool{5: true}, 5, 5, "user"); err == nil {
		t.Error("freeID in a full range succeeded")
	}
}

func TestAccountLockExcludes(t *testing.T) {
	etc := t.TempDir()
	unlock, err := Lock(etc)
	if err != nil {
		t.Fatal(err)
	}
	if u2, err := lock(etc, 200*time.Millisecond); err == nil {
		u2()
		t.Fatal("a second lock was granted while the first was held")
	} else if !strings.Contains(err.Error(), "locked by another program") {
		t.Errorf("error %q", err)
	}
	unlock()
	u3, err := Lock(etc)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	u3()
}

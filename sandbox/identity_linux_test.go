//go:build linux

package sandbox

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/proxy"
	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/setup"
)

// swapVar sets *p to v and returns a function that restores it.
func swapVar[T any](p *T, v T) func() {
	old := *p
	*p = v
	return func() { *p = old }
}

// ---- Pure parts ----

func TestACLEncodeParse(t *testing.T) {
	a := acl{
		{aclUserObj, 7, aclUndefinedID},
		{aclUser, 5, 1000},
		{aclGroupObj, 5, aclUndefinedID},
		{aclGroup, 7, 2000},
		{aclMask, 7, aclUndefinedID},
		{aclOther, 0, aclUndefinedID},
	}
	raw := a.encode()
	want := "02000000" + "01000700ffffffff" + "02000500e8030000" + "04000500ffffffff" +
		"08000700d0070000" + "10000700ffffffff" + "20000000ffffffff"
	if got := hex.EncodeToString(raw); got != want {
		t.Fatalf("encode = %s, want %s", got, want)
	}
	back, err := parseACL(raw)
	if err != nil || !slices.Equal(back, a) {
		t.Fatalf("parse(encode) = %v, %v", back, err)
	}
	for name, bad := range map[string]acl{
		"no mask with named entry": {{aclUserObj, 7, aclUndefinedID}, {aclGroupObj, 5, aclUndefinedID}, {aclGroup, 7, 1}, {aclOther, 0, aclUndefinedID}},
		"out of order":             {{aclGroupObj, 5, aclUndefinedID}, {aclUserObj, 7, aclUndefinedID}, {aclOther, 0, aclUndefinedID}},
		"duplicate named":          {{aclUserObj, 7, aclUndefinedID}, {aclGroupObj, 5, aclUndefinedID}, {aclGroup, 7, 1}, {aclGroup, 5, 1}, {aclMask, 7, aclUndefinedID}, {aclOther, 0, aclUndefinedID}},
		"bad perm":                 {{aclUserObj, 8, aclUndefinedID}, {aclGroupObj, 5, aclUndefinedID}, {aclOther, 0, aclUndefinedID}},
		"no other":                 {{aclUserObj, 7, aclUndefinedID}, {aclGroupObj, 5, aclUndefinedID}},
	} {
		if _, err := parseACL(bad.encode()); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
	if _, err := parseACL([]byte{1, 0, 0, 0}); err == nil {
		t.Error("version 1 parsed")
	}
	if _, err := parseACL(raw[:9]); err == nil {
		t.Error("truncated attribute parsed")
	}
}

func TestACLGroupGrant(t *testing.T) {
	const gid = 4242
	// A directory without an ACL, mode 0750: the grant adds the group and a
	// mask; the owning group keeps r-x.
	got, changed := aclFromMode(0o750).withGroupGrant(gid, aclRWX)
	want := acl{{aclUserObj, 7, aclUndefinedID}, {aclGroupObj, 5, aclUndefinedID}, {aclGroup, 7, gid}, {aclMask, 7, aclUndefinedID}, {aclOther, 0, aclUndefinedID}}
	if !changed || !slices.Equal(got, want) || got.valid() != nil {
		t.Errorf("grant on 0750 = %v %v, want %v", got, changed, want)
	}
	// An ACL whose mask held a named user and the owning group back: they
	// keep exactly what the old mask let them have.
	masked := acl{{aclUserObj, 7, aclUndefinedID}, {aclUser, 7, 1000}, {aclGroupObj, 7, aclUndefinedID}, {aclGroup, 6, 3000}, {aclMask, 5, aclUndefinedID}, {aclOther, 1, aclUndefinedID}}
	got, changed = masked.withGroupGrant(gid, aclRWX)
	want = acl{{aclUserObj, 7, aclUndefinedID}, {aclUser, 5, 1000}, {aclGroupObj, 5, aclUndefinedID}, {aclGroup, 4, 3000}, {aclGroup, 7, gid}, {aclMask, 7, aclUndefinedID}, {aclOther, 1, aclUndefinedID}}
	if !changed || !slices.Equal(got, want) || got.valid() != nil {
		t.Errorf("grant on a masked ACL = %v, want %v", got, want)
	}
	for _, who := range []struct{ uid, gid uint32 }{{1000, 1}, {2, 3000}, {5, 6}} {
		for perm := uint16(1); perm <= 7; perm++ {
			if masked.allows(0, 0, who.uid, who.gid, perm) != got.allows(0, 0, who.uid, who.gid, perm) {
				t.Errorf("uid %d gid %d perm %o: access changed by the grant", who.uid, who.gid, perm)
			}
		}
	}
	// Already granted: nothing to do. Removing it leaves the rest.
	if _, changed := got.withGroupGrant(gid, aclRWX); changed {
		t.Error("second grant changed the ACL")
	}
	rm, removed := got.withoutGroup(gid)
	if !removed || slices.ContainsFunc(rm, func(e aclEntry) bool { return e.Tag == aclGroup && e.ID == gid }) || rm.valid() != nil {
		t.Errorf("withoutGroup = %v %v", rm, removed)
	}
}

func TestACLAllows(t *testing.T) {
	a := acl{{aclUserObj, 7, aclUndefinedID}, {aclUser, 6, 10}, {aclGroupObj, 5, aclUndefinedID}, {aclGroup, 7, 20}, {aclMask, 5, aclUndefinedID}, {aclOther, 1, aclUndefinedID}}
	for _, c := range []struct {
		uid, gid uint32
		want     uint16
		ok       bool
	}{
		{1, 99, aclRWX, true},                 // the owner
		{10, 99, aclRead, true},               // named user, masked to r--
		{10, 99, aclWrite, false},             // masked
		{11, 2, aclRead | aclExecute, true},   // owning group
		{11, 20, aclWrite, false},             // named group rwx, masked
		{11, 20, aclRead | aclExecute, true},  // named group
		{11, 21, aclExecute, true},            // other
		{11, 21, aclRead, false},              // other
		{11, 2, aclWrite | aclExecute, false}, // group matched: no fall back to other
		{10, 2, aclRead | aclExecute, false},  // named user decides before groups
		{1, 2, aclWrite | aclRead | aclExecute, true},
	} {
		if got := a.allows(1, 2, c.uid, c.gid, c.want); got != c.ok {
			t.Errorf("uid %d gid %d want %o: %v", c.uid, c.gid, c.want, got)
		}
	}
}

func TestSetupCommandAndPorts(t *testing.T) {
	if got := formatPorts([]uint16{47103, 47100, 47101, 47102, 8080, 3128, 3129}); got != "3128-3129,8080,47100-47103" {
		t.Errorf("formatPorts = %q", got)
	}
	for _, c := range []struct {
		sudo, alb, installed bool
		ports                []uint16
		want                 string
	}{
		{true, true, false, nil, "sudo sandgate setup --allow-local-binding"},
		{false, false, true, nil, "sandgate setup --allow-local-binding=false"}, // setup keeps the installed mode otherwise
		{false, false, false, nil, "sandgate setup"},
		{false, false, false, []uint16{3128, 3129}, "sandgate setup --ports 3128-3129"},
	} {
		if got := setupCommand(c.sudo, c.alb, c.installed, c.ports); got != c.want {
			t.Errorf("setupCommand(%v, %v, %v, %v) = %q, want %q", c.sudo, c.alb, c.installed, c.ports, got, c.want)
		}
	}
	if got := formatPorts(widerRange([]uint16{47100, 47101})); got != "47100-47103" {
		t.Errorf("widerRange = %q", got)
	}
}

// testMarker returns a current marker for ports and alb.
func testMarker(t *testing.T, ports []uint16, alb bool, offUID, onUID, gid int, names [3]string) setup.Marker {
	t.Helper()
	plan, err := setup.Options{ProxyPorts: ports, AllowLocalBinding: alb}.Plan()
	if err != nil {
		t.Fatal(err)
	}
	return setup.Marker{
		SetupVersion: setup.Version, PlanVersion: ruleplan.Version,
		OfflineUser: names[0], OnlineUser: names[1], Group: names[2],
		OfflineID: strconv.Itoa(offUID), OnlineID: strconv.Itoa(onUID), GroupID: strconv.Itoa(gid),
		ProxyPorts: plan.ProxyPorts, AllowLocalBinding: alb, RulesDigest: plan.Digest(),
		InstalledAt: time.Now().UTC(), InstalledBy: "sandbox test",
	}
}

func TestStaleReasons(t *testing.T) {
	m := testMarker(t, setup.DefaultPorts(), false, 4001, 4002, 4003, [3]string{"off", "on", "grp"})
	if r := staleReasons(m, identityMode{}); r != nil {
		t.Errorf("current marker: %v", r)
	}
	if r := staleReasons(m, identityMode{alb: true}); len(r) != 1 || r[0] != "allow_local_binding changed from false to true" {
		t.Errorf("local binding wanted: %v", r)
	}
	// The online user does not care about the offline rules' mode.
	if r := staleReasons(m, identityMode{full: true, alb: true}); r != nil {
		t.Errorf("full network: %v", r)
	}
	custom := testMarker(t, []uint16{3128, 3129}, false, 4001, 4002, 4003, [3]string{"off", "on", "grp"})
	if r := staleReasons(custom, identityMode{}); r != nil {
		t.Errorf("custom ports are the installed set, not drift: %v", r)
	}
	old := m
	old.SetupVersion = setup.Version - 1
	if r := staleReasons(old, identityMode{}); len(r) == 0 || !strings.Contains(r[0], "setup version changed") {
		t.Errorf("old setup version: %v", r)
	}
}

func TestProxyEnvWithCredentials(t *testing.T) {
	c := &proxy.Credentials{User: "u", Password: "p4ss"}
	base := []string{"PATH=/bin", "HTTPS_PROXY=http://corp:8080", "no_proxy=corp", "SANDGATE_SOCKS_PASSWORD=old", "HOME=/root"}
	env := proxyEnvWithCredentials(identityEnv(base, "off", "/var/lib/sandgate/home/off"), c, 47100, 47101, false, "/usr/bin/sandgate")
	get := func(k string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], k+"="); ok {
				return v, true
			}
		}
		return "", false
	}
	for k, want := range map[string]string{
		"HTTP_PROXY": "http://u:p4ss@127.0.0.1:47100", "HTTPS_PROXY": "http://u:p4ss@127.0.0.1:47100",
		"ALL_PROXY": "socks5h://u:p4ss@127.0.0.1:47101", "RSYNC_PROXY": "u:p4ss@127.0.0.1:47100",
		"NO_PROXY": "", "no_proxy": "", "SANDGATE_SOCKS_USER": "u", "SANDGATE_SOCKS_PASSWORD": "p4ss", "PATH": "/bin",
	} {
		if v, ok := get(k); !ok || v != want {
			t.Errorf("%s = %q (set %v), want %q", k, v, ok, want)
		}
	}
	if v, _ := get("GIT_SSH_COMMAND"); !strings.Contains(v, "socks-connect 127.0.0.1:47101 %h %p") {
		t.Errorf("GIT_SSH_COMMAND = %q", v)
	}
	if v, _ := get("HOME"); v != "/var/lib/sandgate/home/off" {
		t.Errorf("HOME = %q", v)
	}
	if v, _ := get("USER"); v != "off" {
		t.Errorf("USER = %q", v)
	}
	n := 0
	for _, kv := range env {
		if strings.HasPrefix(kv, "SANDGATE_SOCKS_PASSWORD=") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("SANDGATE_SOCKS_PASSWORD appears %d times", n)
	}
	env = proxyEnvWithCredentials(nil, c, 1, 2, true, "")
	if v, _ := get("NO_PROXY"); v != "localhost,127.0.0.1,::1" {
		t.Errorf("NO_PROXY with local binding = %q", v)
	}
}

// ---- Directory grants (real ACLs on a temporary directory) ----

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
	defer swapVar(&grantStateDir, filepath.Join(t.TempDir(), "grants"))()
	const uid, gid = 4000201, 4000202
	nolog := func(string, ...any) {}
	tmp, err := filepath.EvalSymlinks(t.TempDir()) // grantDir takes paths without symlinks
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
	g1, err := grantDir(dir, uid, gid)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("no POSIX ACLs on %s", dir)
		}
		t.Fatal(err)
	}
	raw := getXattr(t, dir)
	a, err := parseACL(raw)
	if err != nil || !a.allows(0, 0, uid, gid, aclRWX) {
		t.Fatalf("after the grant: %v %v", a, err)
	}
	g2, err := grantDir(dir, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	if err := g1.release(false, nolog); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(getXattr(t, dir), raw) {
		t.Error("the first run to leave took the grant back while another run holds it")
	}
	if err := g2.release(false, nolog); err != nil {
		t.Fatal(err)
	}
	if x := getXattr(t, dir); x != nil || modeOfDir(t, dir) != 0o750 {
		t.Errorf("after the last run: attribute %x, mode %o; want none, 750", x, modeOfDir(t, dir))
	}

	// A previous ACL comes back byte for byte.
	prev := acl{{aclUserObj, 7, aclUndefinedID}, {aclUser, 7, 4000300}, {aclGroupObj, 5, aclUndefinedID}, {aclMask, 5, aclUndefinedID}, {aclOther, 0, aclUndefinedID}}.encode()
	if err := unix.Setxattr(dir, aclXattr, prev, 0); err != nil {
		t.Fatal(err)
	}
	g, err := grantDir(dir, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.release(false, nolog); err != nil {
		t.Fatal(err)
	}
	if x := getXattr(t, dir); !bytes.Equal(x, prev) {
		t.Errorf("previous ACL not restored: %x, want %x", x, prev)
	}
	if err := unix.Removexattr(dir, aclXattr); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}

	// A grant that a run asked to keep stays, and a later run does not
	// take it back.
	g, err = grantDir(dir, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.release(true, nolog); err != nil {
		t.Fatal(err)
	}
	kept := getXattr(t, dir)
	if kept == nil {
		t.Fatal("kept grant is gone")
	}
	g, err = grantDir(dir, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.release(false, nolog); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(getXattr(t, dir), kept) {
		t.Error("a later run took back a kept grant")
	}
	if err := unix.Removexattr(dir, aclXattr); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}

	// The owner changed the ACL during the run: only our entry goes.
	g, err = grantDir(dir, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := parseACL(getXattr(t, dir))
	cur = append(cur, aclEntry{aclUser, 6, 4000301})
	sortACL(cur)
	if err := unix.Setxattr(dir, aclXattr, cur.encode(), 0); err != nil {
		t.Fatal(err)
	}
	var logged []string
	if err := g.release(false, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }); err != nil {
		t.Fatal(err)
	}
	after, err := parseACL(getXattr(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(after, func(e aclEntry) bool { return e.Tag == aclGroup && e.ID == gid }) ||
		!slices.ContainsFunc(after, func(e aclEntry) bool { return e.Tag == aclUser && e.ID == 4000301 }) || len(logged) != 1 {
		t.Errorf("after a concurrent change: %v (log %q)", after, logged)
	}
	_ = unix.Removexattr(dir, aclXattr)

	// A directory the user can already use needs no grant (and no record).
	open := filepath.Join(tmp, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	g, err = grantDir(open, uid, gid)
	if err != nil || g.state != nil || getXattr(t, open) != nil {
		t.Errorf("world-writable directory: grant %+v, %v, attribute %x", g, err, getXattr(t, open))
	}
}

//go:build linux

package setup

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/accounts"
	"github.com/sandgate/sandgate/dirgrant"
	"github.com/sandgate/sandgate/internal/testnet"
	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/nftfw/nfttest"
	"github.com/sandgate/sandgate/ruleplan"
)

func TestMain(m *testing.M) {
	nfttest.MaybeProbe()
	if v := os.Getenv(grantHolderEnv); v != "" {
		os.Exit(holdGrant(strings.Fields(v)))
	}
	os.Exit(m.Run())
}

// grantHolderEnv makes the test binary an identity run's grant holder:
// "RECORDS DIR UID GID". It grants, prints "granted", and holds the grant
// until it is killed.
const grantHolderEnv = "SANDGATE_SETUP_TEST_GRANT_HOLDER"

func holdGrant(args []string) int {
	if len(args) != 4 {
		fmt.Println("bad arguments", args)
		return 2
	}
	uid, _ := strconv.ParseUint(args[2], 10, 32)
	gid, _ := strconv.ParseUint(args[3], 10, 32)
	g, err := dirgrant.Records{Dir: args[0]}.Grant(args[1], dirgrant.Grantee{UID: uint32(uid), GID: uint32(gid)})
	if err != nil || !g.Recorded() {
		fmt.Println("grant:", err)
		return 1
	}
	fmt.Println("granted")
	select {}
}

// testOptions returns options with test-unique names, a private state
// directory and the firewall in netns. Everything the test installs is
// removed when it ends, through Uninstall and, should that fail, directly.
func testOptions(t *testing.T, netns string, ports ...uint16) Options {
	t.Helper()
	testnet.RequirePrivileged(t)
	if netns == "" {
		t.Fatal("tests must not touch the host's firewall: give a network namespace")
	}
	base := testnet.UniqueName(6)
	state := filepath.Join(t.TempDir(), "state")
	o := Options{
		ProxyPorts:  ports,
		OfflineUser: base + "-off",
		OnlineUser:  base + "-on",
		Group:       base,
		StateDir:    state,
		NetNS:       netns,
	}
	t.Cleanup(func() {
		if _, err := Uninstall(o); err != nil {
			t.Errorf("cleanup: Uninstall: %v", err)
		}
		forceRemoveAccounts(t, []string{o.OfflineUser, o.OnlineUser}, o.Group, true)
	})
	return o
}

// forceRemoveAccounts deletes users and a group by name from /etc, whatever
// they look like (test names only). With complain, finding any is an error:
// Uninstall should have removed them.
func forceRemoveAccounts(t *testing.T, users []string, group string, complain bool) {
	t.Helper()
	for _, n := range append(slices.Clone(users), group) {
		if !strings.HasPrefix(n, "sgtest-") {
			t.Fatalf("refusing to force-remove %q: not a test name", n)
		}
	}
	unlock, err := accounts.Lock("/etc")
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer unlock()
	db, err := accounts.Read("/etc", true)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	removed := false
	for _, u := range users {
		if db.RemoveUser(u) {
			removed = true
		}
	}
	if db.RemoveGroup(group) {
		removed = true
	}
	if err := db.Write(true); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if removed && complain && !t.Failed() {
		t.Errorf("cleanup had to remove accounts Uninstall left behind (%v, %s)", users, group)
	}
}

func forceRemove(t *testing.T, o Options) {
	forceRemoveAccounts(t, []string{o.OfflineUser, o.OnlineUser}, o.Group, false)
}

// contains fails the test unless some line of got contains each of want.
func contains(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
			t.Errorf("%s: %q lacks %q", what, got, w)
		}
	}
}

// passwdEntry returns the fields of name's passwd entry (nil: none).
func passwdEntry(t *testing.T, name string) []string {
	t.Helper()
	db, err := accounts.Read("/etc", true)
	if err != nil {
		t.Fatal(err)
	}
	u, found, err := db.LookupUser(name)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		return nil
	}
	return []string{u.Name, u.Password, strconv.Itoa(int(u.UID)), strconv.Itoa(int(u.GID)), u.Gecos, u.Home, u.Shell}
}

// TestInstallCheckUninstall is the round trip: nothing, install, current,
// idempotent, enforced by behaviour, uninstalled, nothing again.
func TestInstallCheckUninstall(t *testing.T) {
	w := nfttest.NewWorld(t, 8080)
	w.ServeMarkedTCP(t, 47100, ruleplan.ProxySocketMark) // as sandgate's proxy does
	w.ServeMarkedTCP(t, 47101, ruleplan.ProxySocketMark)
	o := testOptions(t, w.Host, 47100, 47101)

	diffs, err := Check(o)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Check before Install", diffs,
		"sandgate setup has not been run", "user "+o.OfflineUser+" does not exist",
		"user "+o.OnlineUser+" does not exist", "group "+o.Group+" does not exist", MissingRules)
	if _, _, err := Status(o); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Status before Install: %v, want ErrNotInstalled", err)
	}

	m, changes, err := Install(o)
	if err != nil {
		t.Fatalf("Install: %v (changes %q)", err, changes)
	}
	contains(t, "Install", changes,
		"created group "+o.Group, "created user "+o.OfflineUser, "created user "+o.OnlineUser,
		"created home directory "+filepath.Join(o.StateDir, "home", o.OfflineUser),
		"installed the firewall rules", "wrote the setup marker")

	// The accounts are system accounts without logins.
	gid, _ := strconv.Atoi(m.GroupID)
	for _, name := range []string{o.OfflineUser, o.OnlineUser} {
		e := passwdEntry(t, name)
		if len(e) != 7 {
			t.Fatalf("passwd entry of %s: %q", name, e)
		}
		uid, _ := strconv.Atoi(e[2])
		if uid < 100 || uid > 999 || e[3] != m.GroupID || e[6] != accounts.NoLoginShell() || e[5] != filepath.Join(o.StateDir, "home", name) {
			t.Errorf("passwd entry of %s: %q (group %s)", name, e, m.GroupID)
		}
		st, err := os.Lstat(e[5])
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if !st.IsDir() || st.Mode().Perm() != 0o700 || int(sys.Uid) != uid || int(sys.Gid) != gid {
			t.Errorf("home of %s: mode %v uid %d gid %d", name, st.Mode(), sys.Uid, sys.Gid)
		}
	}
	db, _ := accounts.Read("/etc", true)
	if pw, ok := db.ShadowPassword(o.OfflineUser); !ok || pw != "!" {
		t.Errorf("shadow entry of %s: %q (%v), want a locked password", o.OfflineUser, pw, ok)
	}

	if diffs, err := Check(o); err != nil || diffs != nil {
		t.Fatalf("Check after Install = %q, %v; want current", diffs, err)
	}
	sm, drift, err := Status(o)
	if err != nil || drift != nil || !sameMarker(sm, m) {
		t.Fatalf("Status after Install = %+v, %q, %v", sm, drift, err)
	}
	if _, changes, err := Install(o); err != nil || len(changes) != 0 {
		t.Fatalf("second Install: changes %q, %v; want none", changes, err)
	}
	if got, err := ReadMarker(o.MarkerPath()); err != nil || !got.InstalledAt.Equal(m.InstalledAt) {
		t.Errorf("the second Install rewrote the marker: %+v, %v", got, err)
	}

	off, err := Identity(o, m, ruleplan.Offline)
	if err != nil {
		t.Fatal(err)
	}
	on, err := Identity(o, m, ruleplan.Online)
	if err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(int(off.UID)) != m.OfflineID || strconv.Itoa(int(on.UID)) != m.OnlineID || int(off.GID) != gid {
		t.Errorf("Identity: %+v, %+v; marker %+v", off, on, m)
	}

	// The rules hold for the real users.
	hp := func(h string, p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }
	nfttest.ExpectAll(t, "offline user", w.Host, off.UID, off.GID,
		nfttest.Expect{Check: nfttest.Check{Kind: "tcp", Addr: hp("127.0.0.1", 47100)}, Want: nfttest.OK},
		nfttest.Expect{Check: nfttest.Check{Kind: "tcp", Addr: hp("::1", 47101)}, Want: nfttest.OK},
		nfttest.Expect{Check: nfttest.Check{Kind: "tcp", Addr: hp("127.0.0.1", 8080)}, Want: nfttest.Refused},
		nfttest.Expect{Check: nfttest.Check{Kind: "udp", Addr: hp("127.0.0.1", nfttest.LocalUDPPort)}, Want: nfttest.Denied},
		nfttest.Expect{Check: nfttest.Check{Kind: "tcp", Addr: hp(nfttest.RemoteV4, nfttest.RemoteTCPPort)}, Want: nfttest.Blocked},
		nfttest.Expect{Check: nfttest.Check{Kind: "tcp", Addr: hp(nfttest.RemoteV6, nfttest.RemoteTCPPort)}, Want: nfttest.Blocked},
		nfttest.Expect{Check: nfttest.Check{Kind: "icmp", Addr: nfttest.RemoteV4}, Want: nfttest.Blocked},
	)
	nfttest.ExpectAll(t, "online user", w.Host, on.UID, on.GID,
		nfttest.Expect{Check: nfttest.Check{Kind: "tcp", Addr: hp("127.0.0.1", 8080)}, Want: nfttest.OK},
		nfttest.Expect{Check: nfttest.Check{Kind: "udp", Addr: hp("127.0.0.1", nfttest.LocalUDPPort)}, Want: nfttest.OK},
		nfttest.Expect{Check: nfttest.Check{Kind: "tcp", Addr: hp(nfttest.RemoteV6, nfttest.RemoteTCPPort)}, Want: nfttest.OK},
		nfttest.Expect{Check: nfttest.Check{Kind: "udp", Addr: hp(nfttest.RemoteV4, nfttest.RemoteUDPPort)}, Want: nfttest.OK},
		nfttest.Expect{Check: nfttest.Check{Kind: "icmp", Addr: nfttest.RemoteV4}, Want: nfttest.OK},
	)

	changes, err = Uninstall(o)
	if err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	contains(t, "Uninstall", changes, "removed the setup marker", "removed the firewall rules",
		"removed user "+o.OfflineUser, "removed user "+o.OnlineUser, "removed group "+o.Group, "removed home directory")
	if e := passwdEntry(t, o.OfflineUser); e != nil {
		t.Errorf("user still in passwd: %q", e)
	}
	if live, err := nftfw.Read(w.Host); err != nil || live != nil {
		t.Errorf("firewall after Uninstall: %v, %v", live, err)
	}
	if _, err := os.Lstat(o.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory left after Uninstall: %v", err)
	}
	diffs, err = Check(o)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Check after Uninstall", diffs, "has not been run", "does not exist", MissingRules)
	if changes, err := Uninstall(o); err != nil || len(changes) != 0 {
		t.Errorf("second Uninstall: %q, %v; want nothing to do", changes, err)
	}
}

// TestDriftAndReconcile: a change of ports or mode, and lost rules, are
// each reported in words, and Reconcile brings the setup back to current.
func TestDriftAndReconcile(t *testing.T) {
	ns := testnet.NewAnonymous(t).Path
	o := testOptions(t, ns, 3128)
	if _, _, err := Install(o); err != nil {
		t.Fatal(err)
	}

	wider := o
	wider.ProxyPorts = []uint16{3128, 8080}
	diffs, err := Check(wider)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Check with more ports", diffs,
		"proxy ports changed from [3128] to [3128 8080]",
		"firewall: set proxy_ports holds ports [3128], expected [3128 8080]")

	alb := o
	alb.AllowLocalBinding = true
	diffs, err = Check(alb)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Check with allow_local_binding", diffs,
		"allow_local_binding changed from false to true", "firewall: chain output has an unexpected rule "+ruleplan.NameLocalTCP)

	// As after a reboot: the rules are gone.
	if err := nftfw.Remove(ns); err != nil {
		t.Fatal(err)
	}
	diffs, err = Check(o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(diffs, []string{MissingRules}) {
		t.Errorf("Check without rules = %q, want only %q", diffs, MissingRules)
	}
	if _, drift, err := Status(o); err != nil || !slices.Equal(drift, []string{MissingRules}) {
		t.Errorf("Status without rules = %q, %v", drift, err)
	}
	_, changes, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.HasPrefix(changes[0], "installed the firewall rules") {
		t.Errorf("re-running setup after a reboot changed %q, want only the rules", changes)
	}

	m, changes, err := Reconcile(alb)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Reconcile", changes, "replaced the firewall rules", "allow_local_binding", "wrote the setup marker")
	if !m.AllowLocalBinding || !slices.Equal(m.ProxyPorts, []uint16{3128}) {
		t.Errorf("marker after Reconcile: %+v", m)
	}
	if _, drift, err := Status(o); err != nil || drift != nil {
		t.Errorf("Status after Reconcile = %q, %v", drift, err)
	}
	if diffs, err := Check(alb); err != nil || diffs != nil {
		t.Errorf("Check(allow_local_binding) after Reconcile = %q, %v", diffs, err)
	}
	// The rules on their own drift from the marker: Status says so.
	off, err := Identity(o, m, ruleplan.Offline)
	if err != nil {
		t.Fatal(err)
	}
	if err := nftfw.Apply(ns, mustBuild(t, []uint16{9999}, false), off.UID); err != nil {
		t.Fatal(err)
	}
	_, drift, err := Status(o)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Status with foreign rules", drift, "firewall: set proxy_ports holds ports [9999], expected [3128]")
}

func mustBuild(t *testing.T, ports []uint16, alb bool) ruleplan.Plan {
	t.Helper()
	p, err := ruleplan.Build(ports, alb)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMarkerVersions: a marker written by another setup or plan version is
// reported, and a re-run of setup rewrites it.
func TestMarkerVersions(t *testing.T) {
	ns := testnet.NewAnonymous(t).Path
	o := testOptions(t, ns)
	m, _, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	old := m
	old.SetupVersion, old.PlanVersion = Version-1, ruleplan.Version-1
	if err := WriteMarker(o.MarkerPath(), old); err != nil {
		t.Fatal(err)
	}
	diffs, err := Check(o)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Check with an old marker", diffs,
		fmt.Sprintf("setup version changed from %d to %d", Version-1, Version),
		fmt.Sprintf("rule plan version changed from %d to %d", ruleplan.Version-1, ruleplan.Version))
	_, drift, err := Status(o)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Status with an old marker", drift,
		fmt.Sprintf("setup version %d", Version-1), fmt.Sprintf("rule plan version %d", ruleplan.Version-1))

	_, changes, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.HasPrefix(changes[0], "wrote the setup marker") {
		t.Errorf("Install over an old marker changed %q, want only the marker", changes)
	}
	if diffs, err := Check(o); err != nil || diffs != nil {
		t.Errorf("Check after the re-run = %q, %v", diffs, err)
	}

	// A corrupt marker is reported, not trusted.
	if err := os.WriteFile(o.MarkerPath(), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	diffs, err = Check(o)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Check with a corrupt marker", diffs, "corrupt")
	if _, _, err := Status(o); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Status with a corrupt marker: %v", err)
	}
}

// addRawUser writes a user (and its group, when gid is new) the way another
// tool would have.
func addRawUser(t *testing.T, name string, uid, gid uint32, shell, home string) {
	t.Helper()
	unlock, err := accounts.Lock("/etc")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	db, err := accounts.Read("/etc", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddUserEntry(accounts.User{Name: name, UID: uid, GID: gid, Gecos: "pre-existing", Home: home, Shell: shell}); err != nil {
		t.Fatal(err)
	}
	if err := db.Write(false); err != nil {
		t.Fatal(err)
	}
}

func freeSystemIDs(t *testing.T, n int) []uint32 {
	t.Helper()
	db, err := accounts.Read("/etc", false)
	if err != nil {
		t.Fatal(err)
	}
	used := db.UsedUIDs()
	gused := db.UsedGIDs()
	var out []uint32
	// Search from the bottom: Install takes ids from the top.
	for id := db.IDs().UIDMin; id <= db.IDs().UIDMax && len(out) < n; id++ {
		if !used[id] && !gused[id] {
			out = append(out, id)
		}
	}
	if len(out) < n {
		t.Fatal("no free system ids")
	}
	return out
}

// TestAdoption: existing users that look like sandgate's are adopted with
// their ids; others are refused before anything is changed.
func TestAdoption(t *testing.T) {
	ns := testnet.NewAnonymous(t).Path
	o := testOptions(t, ns)
	ids := freeSystemIDs(t, 2)
	addRawUser(t, o.OfflineUser, ids[0], 65534, "/usr/sbin/nologin", "/nonexistent")
	addRawUser(t, o.OnlineUser, ids[1], 65534, "/bin/false", filepath.Join(o.StateDir, "home", o.OnlineUser))

	m, changes, err := Install(o)
	if err != nil {
		t.Fatalf("Install over sandgate-like users: %v", err)
	}
	contains(t, "Install (adoption)", changes,
		"created group "+o.Group,
		fmt.Sprintf("adopted existing user %s (uid %d)", o.OfflineUser, ids[0]),
		fmt.Sprintf("adopted existing user %s (uid %d)", o.OnlineUser, ids[1]),
		"created home directory "+filepath.Join(o.StateDir, "home", o.OnlineUser),
		"set the primary group of user "+o.OfflineUser+" to "+o.Group)
	if slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, "created user") }) {
		t.Errorf("Install created users although they existed: %q", changes)
	}
	if m.OfflineID != strconv.Itoa(int(ids[0])) || m.OnlineID != strconv.Itoa(int(ids[1])) {
		t.Errorf("marker ids %s/%s, want the adopted %d/%d", m.OfflineID, m.OnlineID, ids[0], ids[1])
	}
	if _, err := os.Lstat("/nonexistent"); err == nil {
		t.Error("Install created /nonexistent for an adopted user")
	}
	if _, changes, err := Install(o); err != nil || len(changes) != 0 {
		t.Errorf("re-run after adoption: %q, %v; want no changes", changes, err)
	}
	if diffs, err := Check(o); err != nil || diffs != nil {
		t.Errorf("Check after adoption = %q, %v", diffs, err)
	}

	// Users that are not sandgate-like are refused, and nothing is made.
	for _, c := range []struct {
		shell string
		uid   uint32
		want  string
	}{
		{"/bin/bash", ids[0] + 0, "its shell /bin/bash allows logins"},
		{"/usr/sbin/nologin", 4000000 + ids[0], "is not a system uid"},
	} {
		o2 := testOptions(t, ns)
		addRawUser(t, o2.OfflineUser, c.uid, 65534, c.shell, "/nonexistent")
		_, changes, err := Install(o2)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "will not take it over") {
			t.Errorf("Install over a user with shell %s uid %d: %v, want a refusal saying %q", c.shell, c.uid, err, c.want)
		}
		if len(changes) != 0 {
			t.Errorf("the refused Install changed %q", changes)
		}
		db, _ := accounts.Read("/etc", false)
		if _, _, found, _ := db.LookupGroup(o2.Group); found {
			t.Errorf("the refused Install created group %s", o2.Group)
		}
		if _, found, _ := db.LookupUser(o2.OnlineUser); found {
			t.Errorf("the refused Install created user %s", o2.OnlineUser)
		}
		// Uninstall refuses the stranger too; the cleanup removes it directly.
		if _, err := Uninstall(o2); err == nil {
			t.Error("Uninstall removed a user that is not sandgate's")
		}
		forceRemove(t, o2)
	}
}

// TestLeaseOnRealSetup: the lease over the real Status and Reconcile
// switches the local-binding mode and restores lost rules, each in one
// message, and leaves a setup that checks out.
func TestLeaseOnRealSetup(t *testing.T) {
	ns := testnet.NewAnonymous(t).Path
	o := testOptions(t, ns)
	if _, _, err := Install(o); err != nil {
		t.Fatal(err)
	}
	l := Leaser{Options: Options{StateDir: o.StateDir, NetNS: ns}, LockDir: filepath.Join(t.TempDir(), "run")}
	var said []string
	notify := func(s string) { said = append(said, s) }
	s, err := l.Acquire(Need{AllowLocalBinding: true}, notify)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Marker().AllowLocalBinding || !slices.Equal(said, []string{"reconciled the identity setup: allow_local_binding changed from false to true"}) {
		t.Errorf("switch: marker %+v, messages %q", s.Marker(), said)
	}
	acc, err := s.Account()
	if err != nil || acc.Name != o.OfflineUser {
		t.Errorf("Account = %+v, %v", acc, err)
	}
	s.Release()

	if err := nftfw.Remove(ns); err != nil {
		t.Fatal(err)
	}
	said = nil
	s, err = l.Acquire(Need{AllowLocalBinding: true}, notify)
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	if !slices.Equal(said, []string{"reconciled the identity setup: the firewall rules were missing, as after a reboot"}) {
		t.Errorf("after lost rules: messages %q", said)
	}
	if _, drift, err := Status(o); err != nil || drift != nil {
		t.Errorf("Status after the lease = %q, %v", drift, err)
	}
	said = nil
	if s, err = l.Acquire(Need{AllowLocalBinding: true}, notify); err != nil || len(said) != 0 {
		t.Errorf("current setup: %v, messages %q", err, said)
	}
	s.Release()
}

// TestLeftoverGrant: the working-directory grant of an identity run that
// was killed is reported by Check, with its fix, and taken back by the next
// Install, run from another directory, exactly as it was before.
func TestLeftoverGrant(t *testing.T) {
	ns := testnet.NewAnonymous(t).Path
	o := testOptions(t, ns)
	m, _, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	off, err := Identity(o, m, ruleplan.Offline)
	if err != nil {
		t.Fatal(err)
	}
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(base, "work")
	if err := os.Mkdir(work, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o750); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d", grantHolderEnv, o.GrantRecords().Dir, work, off.UID, off.GID))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "granted\n" {
		t.Fatalf("grant holder: %q, %v", line, err)
	}
	granted := make([]byte, 256)
	if n, err := unix.Getxattr(work, dirgrant.XattrName, granted); err != nil || n == 0 {
		t.Fatalf("no grant on %s: %v", work, err)
	}
	if diffs, err := Check(o); err != nil || diffs != nil {
		t.Fatalf("Check while the run lives = %q, %v; want current", diffs, err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	diffs, err := Check(o)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Check after the run was killed", diffs, "the sandbox group's access to "+work, "did not end cleanly", "run `sandgate setup` to take it back")

	t.Chdir(base)
	_, changes, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Install after the run was killed", changes, "took back the sandbox group's access to "+work)
	if n, err := unix.Getxattr(work, dirgrant.XattrName, granted); !errors.Is(err, unix.ENODATA) {
		t.Errorf("%s still has an ACL after Install: %x, %v", work, granted[:max(n, 0)], err)
	}
	if fi, err := os.Stat(work); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("%s after Install: %v, %v; want mode 0750", work, fi, err)
	}
	if diffs, err := Check(o); err != nil || diffs != nil {
		t.Errorf("Check after the repair = %q, %v; want current", diffs, err)
	}
}

// TestCheckDormantTable: sandgate's table made dormant (its rules kept, none
// evaluated) is what Check and Status report, and setup repairs it.
func TestCheckDormantTable(t *testing.T) {
	ns := testnet.NewAnonymous(t).Path
	o := testOptions(t, ns, 3128)
	if _, _, err := Install(o); err != nil {
		t.Fatal(err)
	}
	if err := nfttest.SetTableFlags(ns, nftfw.TableName, unix.NFT_TABLE_F_DORMANT); err != nil {
		t.Fatal(err)
	}
	want := []string{"firewall: sandgate's table is dormant: the kernel does not evaluate its rules"}
	if diffs, err := Check(o); err != nil || !slices.Equal(diffs, want) {
		t.Errorf("Check of a dormant table = %q, %v; want %q", diffs, err, want)
	}
	if _, drift, err := Status(o); err != nil || !slices.Equal(drift, want) {
		t.Errorf("Status of a dormant table = %q, %v; want %q", drift, err, want)
	}
	_, changes, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.Contains(changes[0], "the firewall rules") {
		t.Errorf("setup over a dormant table changed %q, want only the rules", changes)
	}
	if diffs, err := Check(o); err != nil || diffs != nil {
		t.Errorf("Check after setup = %q, %v; want nothing", diffs, err)
	}
}

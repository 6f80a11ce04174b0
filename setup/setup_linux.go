//go:build linux

package setup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/accounts"
	"github.com/sandgate/sandgate/dirgrant"
	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/ruleplan"
)

// DefaultStateDir is where setup keeps its marker and the sandbox users'
// homes on Linux.
const DefaultStateDir = "/var/lib/sandgate"

// markerName is the marker's file name in the state directory.
const markerName = "setup.json"

// resolve fills in every default.
func (o Options) resolve() Options {
	o = o.WithDefaults()
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.EtcDir == "" {
		o.EtcDir = "/etc"
	}
	return o
}

// MarkerPath returns the path of the setup marker for o
// (/var/lib/sandgate/setup.json by default).
func (o Options) MarkerPath() string {
	return filepath.Join(o.resolve().StateDir, markerName)
}

// GrantRecords returns where identity runs record their working-directory
// grants: dir-grants in the state directory (dirgrant.DefaultDir by
// default).
func (o Options) GrantRecords() dirgrant.Records {
	return dirgrant.Records{Dir: filepath.Join(o.resolve().StateDir, "dir-grants")}
}

// homeOf returns the private home of a sandbox user.
func (o Options) homeOf(name string) string {
	return filepath.Join(o.StateDir, "home", name)
}

// Account is a sandbox user as an identity run needs it.
type Account struct {
	Name string
	UID  uint32
	// GID is the sandgate group's gid: runs use it as the primary group
	// (and no supplementary groups).
	GID  uint32
	Home string
}

// Install creates or adopts the two sandbox users and their group, gives
// each user a private home under the state directory, installs the
// firewall rules for o (one atomic nftables transaction, in o.NetNS) and
// writes the marker. It needs root. It is idempotent: it changes only what
// differs, and returns each change in words (none on a re-run with the same
// options). Existing users or a group with the configured names are adopted
// when they look like sandgate's (system ids, no login shell, no
// password); otherwise Install refuses before changing anything.
func Install(o Options) (Marker, []string, error) {
	o = o.resolve()
	if os.Geteuid() != 0 {
		return Marker{}, nil, errors.New("setting up the identity backend needs root (it creates system users and installs firewall rules)")
	}
	if err := validateNames(o); err != nil {
		return Marker{}, nil, err
	}
	plan, err := o.Plan()
	if err != nil {
		return Marker{}, nil, err
	}
	unlock, err := lockState(o.StateDir)
	if err != nil {
		return Marker{}, nil, err
	}
	defer unlock()

	prev, prevErr := ReadMarker(o.MarkerPath())
	hadMarker := prevErr == nil
	// Grants that runs which did not end cleanly left behind go first.
	changes := RepairGrants(o.GrantRecords())

	acc, ch, err := ensureAccounts(o, prev, hadMarker)
	changes = append(changes, ch...)
	if err != nil {
		return Marker{}, changes, err
	}
	for _, u := range []accounts.User{acc.offline, acc.online} {
		ch, err := ensureHome(o, u, acc.gid)
		changes = append(changes, ch...)
		if err != nil {
			return Marker{}, changes, err
		}
	}

	live, err := nftfw.Read(o.NetNS)
	if err != nil {
		return Marker{}, changes, err
	}
	var diffs []string
	if live != nil {
		if diffs, err = live.Diff(plan, acc.offline.UID); err != nil {
			return Marker{}, changes, err
		}
	}
	if live == nil || len(diffs) > 0 {
		if err := nftfw.Apply(o.NetNS, plan, acc.offline.UID); err != nil {
			return Marker{}, changes, err
		}
		verb := "installed"
		if live != nil {
			verb = "replaced"
		}
		changes = append(changes, fmt.Sprintf("%s the firewall rules (nftables table inet %s) for %s (uid %d): %s",
			verb, nftfw.TableName, acc.offline.Name, acc.offline.UID, plan.Summary()))
	}

	m := Marker{
		SetupVersion:      Version,
		PlanVersion:       ruleplan.Version,
		OfflineUser:       acc.offline.Name,
		OnlineUser:        acc.online.Name,
		Group:             o.Group,
		OfflineID:         strconv.FormatUint(uint64(acc.offline.UID), 10),
		OnlineID:          strconv.FormatUint(uint64(acc.online.UID), 10),
		GroupID:           strconv.FormatUint(uint64(acc.gid), 10),
		ProxyPorts:        plan.ProxyPorts,
		AllowLocalBinding: plan.AllowLocalBinding,
		RulesDigest:       plan.Digest(),
		InstalledAt:       time.Now().UTC().Truncate(time.Second),
		InstalledBy:       buildName(),
	}
	if hadMarker && sameMarker(prev, m) {
		return prev, changes, nil
	}
	if err := WriteMarker(o.MarkerPath(), m); err != nil {
		return Marker{}, changes, err
	}
	return m, append(changes, "wrote the setup marker "+o.MarkerPath()), nil
}

// Reconcile brings an installed setup to o: the same as Install (users
// kept, rules replaced in one transaction, marker rewritten). An identity
// run started by root calls it when the installed ports or local-binding
// mode do not cover the run; the changes say what it did.
func Reconcile(o Options) (Marker, []string, error) {
	return Install(o)
}

// Check compares the live state (users, group, homes, firewall rules,
// marker) with what Install(o) would make it, and returns each difference
// in plain words; nil means current. Without root it checks what it can
// read: the firewall rules cannot be read, and that is reported as a
// difference. The error is for failures to check at all.
func Check(o Options) ([]string, error) {
	o = o.resolve()
	plan, err := o.Plan()
	if err != nil {
		return nil, err
	}
	var out []string
	m, merr := ReadMarker(o.MarkerPath())
	hasMarker := merr == nil
	switch {
	case errors.Is(merr, ErrNotInstalled):
		out = append(out, fmt.Sprintf("sandgate setup has not been run (no marker at %s)", o.MarkerPath()))
	case merr != nil:
		out = append(out, merr.Error())
	}

	db, err := accounts.Read(o.EtcDir, false)
	if err != nil {
		return out, err
	}
	var recOff, recOn, recGroup string
	if hasMarker {
		recOff, recOn, recGroup = m.OfflineID, m.OnlineID, m.GroupID
	}
	offline, offOK, d := checkUser(db, o.OfflineUser, recOff)
	out = append(out, d...)
	online, onOK, d := checkUser(db, o.OnlineUser, recOn)
	out = append(out, d...)
	gid, gOK, d := checkGroup(db, o.Group, recGroup)
	out = append(out, d...)
	if offOK && onOK && offline.UID == online.UID {
		out = append(out, fmt.Sprintf("users %s and %s have the same uid %d", offline.Name, online.Name, offline.UID))
	}
	if gOK {
		for _, u := range []struct {
			u  accounts.User
			ok bool
		}{{offline, offOK}, {online, onOK}} {
			if u.ok {
				out = append(out, primaryGroup(u.u, o.Group, gid)...)
				out = append(out, checkHome(o, u.u, gid)...)
			}
		}
	}

	live, err := nftfw.Read(o.NetNS)
	switch {
	case err != nil:
		out = append(out, "the firewall rules could not be read: "+err.Error())
	case live == nil:
		out = append(out, MissingRules)
	case offOK:
		d, err := live.Diff(plan, offline.UID)
		if err != nil {
			return out, err
		}
		for _, x := range d {
			out = append(out, "firewall: "+x)
		}
	}
	if hasMarker {
		out = append(out, Drift(m, o)...)
		if offOK && m.OfflineUser != o.OfflineUser {
			out = append(out, fmt.Sprintf("the marker names the offline user %s, not %s", m.OfflineUser, o.OfflineUser))
		}
	}
	if os.Geteuid() == 0 { // the records are root's
		out = append(out, grantProblems(o.GrantRecords())...)
	}
	return out, nil
}

// Status is the cheap check an identity run makes before it starts: it
// reads the marker (ErrNotInstalled when there is none) and returns it with
// every way in which the live state differs from what the marker records:
// versions older than this build's, users or group missing or changed, the
// firewall rules missing or different from the marker's ports and mode.
// Names come from the marker; o gives the directories and namespace. A run
// must not start while drift is non-empty. Reading the rules needs root; a
// caller without it gets that as drift.
func Status(o Options) (Marker, []string, error) {
	o = o.resolve()
	m, err := ReadMarker(o.MarkerPath())
	if err != nil {
		return Marker{}, nil, err
	}
	plan, drift, ok := markerDrift(m)
	if !ok {
		return m, drift, nil
	}
	db, err := accounts.Read(o.EtcDir, false)
	if err != nil {
		return m, nil, err
	}
	offline, offOK, d := checkUser(db, m.OfflineUser, m.OfflineID)
	drift = append(drift, d...)
	online, onOK, d := checkUser(db, m.OnlineUser, m.OnlineID)
	drift = append(drift, d...)
	gid, gOK, d := checkGroup(db, m.Group, m.GroupID)
	drift = append(drift, d...)
	if gOK && offOK {
		drift = append(drift, primaryGroup(offline, m.Group, gid)...)
	}
	if gOK && onOK {
		drift = append(drift, primaryGroup(online, m.Group, gid)...)
	}
	if !offOK {
		return m, drift, nil
	}
	live, err := nftfw.Read(o.NetNS)
	switch {
	case err != nil:
		drift = append(drift, "the firewall rules could not be read: "+err.Error())
	case live == nil:
		drift = append(drift, MissingRules)
	default:
		diffs, err := live.Diff(plan, offline.UID)
		if err != nil {
			return m, drift, err
		}
		for _, x := range diffs {
			drift = append(drift, "firewall: "+x)
		}
	}
	return m, drift, nil
}

// Identity returns the account of one sandbox identity recorded in m, as
// found in the account database, with the group's gid. It fails when the
// user or group is missing or its id differs from the marker's.
func Identity(o Options, m Marker, id ruleplan.Identity) (Account, error) {
	o = o.resolve()
	var name, rec string
	switch id {
	case ruleplan.Offline:
		name, rec = m.OfflineUser, m.OfflineID
	case ruleplan.Online:
		name, rec = m.OnlineUser, m.OnlineID
	default:
		return Account{}, fmt.Errorf("unknown sandbox identity %q", id)
	}
	db, err := accounts.Read(o.EtcDir, false)
	if err != nil {
		return Account{}, err
	}
	u, ok, d := checkUser(db, name, rec)
	if !ok || len(d) > 0 {
		return Account{}, fmt.Errorf("the %s sandbox user is not as set up (%s); run `sandgate setup`", id, strings.Join(d, "; "))
	}
	gid, ok, d := checkGroup(db, m.Group, m.GroupID)
	if ok {
		d = append(d, primaryGroup(u, m.Group, gid)...)
	}
	if !ok || len(d) > 0 {
		return Account{}, fmt.Errorf("the sandbox group is not as set up (%s); run `sandgate setup`", strings.Join(d, "; "))
	}
	return Account{Name: u.Name, UID: u.UID, GID: gid, Home: u.Home}, nil
}

// Uninstall removes what Install made: the marker first (so no new
// identity run starts), the firewall table, the two users, the group, the
// homes and the state directory when it is left empty. It refuses, before
// removing anything, when a user with a configured name does not look like
// a sandgate user or still has processes running. It returns each change in
// words; removing what is not there is not an error.
func Uninstall(o Options) ([]string, error) {
	o = o.resolve()
	if os.Geteuid() != 0 {
		return nil, errors.New("removing the identity backend needs root")
	}
	if err := validateNames(o); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(o.StateDir); err == nil {
		unlock, err := lockState(o.StateDir)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}

	unlockAcc, err := accounts.Lock(o.EtcDir)
	if err != nil {
		return nil, err
	}
	defer unlockAcc()
	db, err := accounts.Read(o.EtcDir, true)
	if err != nil {
		return nil, err
	}
	var users []accounts.User
	for _, name := range []string{o.OfflineUser, o.OnlineUser} {
		u, found, err := db.LookupUser(name)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if why := db.NotAdoptable(u); why != "" {
			return nil, fmt.Errorf("user %s does not look like a sandgate sandbox user (%s); not removing it", name, why)
		}
		if pids := accounts.ProcessesOf(u.UID); len(pids) > 0 {
			return nil, fmt.Errorf("user %s (uid %d) still has processes running (pid %s); stop them first", name, u.UID, strings.Join(pids, ", "))
		}
		users = append(users, u)
	}
	gid, _, gFound, err := db.LookupGroup(o.Group)
	if err != nil {
		return nil, err
	}
	if gFound {
		if why := db.GroupNotAdoptable(gid); why != "" {
			return nil, fmt.Errorf("group %s does not look like sandgate's (%s); not removing it", o.Group, why)
		}
	}

	// Grants name the group's gid, which a later group could get.
	changes := RepairGrants(o.GrantRecords())
	if err := os.Remove(o.MarkerPath()); err == nil {
		changes = append(changes, "removed the setup marker "+o.MarkerPath())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return changes, fmt.Errorf("removing the setup marker: %w", err)
	}
	live, err := nftfw.Read(o.NetNS)
	if err != nil {
		return changes, err
	}
	if live != nil {
		if err := nftfw.Remove(o.NetNS); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("removed the firewall rules (nftables table inet %s)", nftfw.TableName))
	}

	for _, u := range users {
		db.RemoveUser(u.Name)
	}
	keepGroup := false
	if gFound {
		if name, ok := db.PrimaryGroupUser(gid); ok {
			keepGroup = true
			changes = append(changes, fmt.Sprintf("kept group %s: it is the primary group of user %s", o.Group, name))
		}
		if !keepGroup {
			db.RemoveGroup(o.Group)
		}
	}
	if err := db.Write(true); err != nil {
		return changes, err
	}
	for _, u := range users {
		changes = append(changes, fmt.Sprintf("removed user %s (uid %d)", u.Name, u.UID))
	}
	if gFound && !keepGroup {
		changes = append(changes, fmt.Sprintf("removed group %s (gid %d)", o.Group, gid))
	}

	for _, name := range []string{o.OfflineUser, o.OnlineUser} {
		home := o.homeOf(name)
		if _, err := os.Lstat(home); err == nil {
			if err := os.RemoveAll(home); err != nil {
				return changes, fmt.Errorf("removing home directory: %w", err)
			}
			changes = append(changes, "removed home directory "+home)
		}
	}
	os.Remove(filepath.Dir(o.homeOf("x"))) // the homes' parent, when empty
	os.Remove(o.GrantRecords().Dir)        // when empty
	os.Remove(filepath.Join(o.StateDir, lockName))
	os.Remove(o.StateDir) // when empty
	return changes, nil
}

// installedAccounts are the two users and the group as installed.
type installedAccounts struct {
	offline, online accounts.User
	gid             uint32
}

// ensureAccounts creates or adopts the group and the two users. It decides
// everything before it changes anything, so a refusal leaves the account
// databases as they were.
func ensureAccounts(o Options, prev Marker, hadMarker bool) (installedAccounts, []string, error) {
	unlock, err := accounts.Lock(o.EtcDir)
	if err != nil {
		return installedAccounts{}, nil, err
	}
	defer unlock()
	db, err := accounts.Read(o.EtcDir, true)
	if err != nil {
		return installedAccounts{}, nil, err
	}

	gid, _, gFound, err := db.LookupGroup(o.Group)
	if err != nil {
		return installedAccounts{}, nil, err
	}
	if gFound {
		if why := db.GroupNotAdoptable(gid); why != "" {
			return installedAccounts{}, nil, fmt.Errorf("group %s already exists and does not look like sandgate's (%s); sandgate will not take it over: remove or rename it, then run setup again", o.Group, why)
		}
	}
	names := []string{o.OfflineUser, o.OnlineUser}
	existing := make([]accounts.User, 2)
	found := make([]bool, 2)
	for i, name := range names {
		u, ok, err := db.LookupUser(name)
		if err != nil {
			return installedAccounts{}, nil, err
		}
		if ok {
			if why := db.NotAdoptable(u); why != "" {
				return installedAccounts{}, nil, fmt.Errorf("user %s already exists and does not look like a sandgate sandbox user (%s); sandgate will not take it over: remove or rename it, then run setup again", name, why)
			}
		}
		existing[i], found[i] = u, ok
	}
	if found[0] && found[1] && existing[0].UID == existing[1].UID {
		return installedAccounts{}, nil, fmt.Errorf("users %s and %s share uid %d; the two sandbox identities must be distinct", names[0], names[1], existing[0].UID)
	}

	var changes []string
	if !gFound {
		if gid, err = db.AddGroup(o.Group); err != nil {
			return installedAccounts{}, nil, err
		}
		changes = append(changes, fmt.Sprintf("created group %s (gid %d)", o.Group, gid))
	} else if !hadMarker || prev.Group != o.Group || prev.GroupID != strconv.FormatUint(uint64(gid), 10) {
		changes = append(changes, fmt.Sprintf("adopted existing group %s (gid %d)", o.Group, gid))
	}
	recorded := []string{prev.OfflineUser + ":" + prev.OfflineID, prev.OnlineUser + ":" + prev.OnlineID}
	gecos := []string{"sandgate offline sandbox user", "sandgate online sandbox user"}
	for i, name := range names {
		if !found[i] {
			uid, err := db.AddUser(name, gid, o.homeOf(name), gecos[i])
			if err != nil {
				return installedAccounts{}, nil, err
			}
			changes = append(changes, fmt.Sprintf("created user %s (uid %d)", name, uid))
		} else {
			if !hadMarker || recorded[i] != name+":"+strconv.FormatUint(uint64(existing[i].UID), 10) {
				changes = append(changes, fmt.Sprintf("adopted existing user %s (uid %d)", name, existing[i].UID))
			}
			if existing[i].GID != gid {
				// Both identities run with the group as their primary group.
				if err := db.SetPrimaryGroup(name, gid); err != nil {
					return installedAccounts{}, nil, err
				}
				changes = append(changes, fmt.Sprintf("set the primary group of user %s to %s (gid %d; was gid %d)", name, o.Group, gid, existing[i].GID))
			}
		}
	}
	if err := db.Write(false); err != nil {
		return installedAccounts{}, nil, err
	}
	var acc installedAccounts
	acc.gid = gid
	for i, dst := range []*accounts.User{&acc.offline, &acc.online} {
		u, ok, err := db.LookupUser(names[i])
		if err != nil {
			return installedAccounts{}, changes, fmt.Errorf("user %s vanished after it was written: %w", names[i], err)
		}
		if !ok {
			return installedAccounts{}, changes, fmt.Errorf("user %s vanished after it was written", names[i])
		}
		*dst = u
	}
	return acc, changes, nil
}

// ensureHome makes the private home of u (mode 0700, owned by u and the
// group) when its passwd entry points into the state directory; adopted
// users with homes elsewhere are left alone.
func ensureHome(o Options, u accounts.User, gid uint32) ([]string, error) {
	home := o.homeOf(u.Name)
	if filepath.Clean(u.Home) != home {
		return nil, nil
	}
	base := filepath.Dir(home)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", base, err)
	}
	if err := rootOwnedDir(base); err != nil {
		return nil, err
	}
	st, err := os.Lstat(home)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(home, 0o700); err != nil {
			return nil, fmt.Errorf("creating home directory: %w", err)
		}
		if err := os.Chmod(home, 0o700); err != nil {
			return nil, err
		}
		if err := os.Lchown(home, int(u.UID), int(gid)); err != nil {
			return nil, fmt.Errorf("creating home directory: %w", err)
		}
		return []string{fmt.Sprintf("created home directory %s (mode 0700, owner %s)", home, u.Name)}, nil
	}
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s should be the home directory of %s but is not a directory; remove it and run setup again", home, u.Name)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm() == 0o700 && sys.Uid == u.UID && sys.Gid == gid {
		return nil, nil
	}
	if err := os.Lchown(home, int(u.UID), int(gid)); err != nil {
		return nil, err
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("set home directory %s to mode 0700, owner %s (was mode %04o, uid %d, gid %d)", home, u.Name, st.Mode().Perm(), sys.Uid, sys.Gid)}, nil
}

// checkHome reports how u's home differs from what ensureHome makes.
func checkHome(o Options, u accounts.User, gid uint32) []string {
	home := o.homeOf(u.Name)
	if filepath.Clean(u.Home) != home {
		return nil
	}
	st, err := os.Lstat(home)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []string{fmt.Sprintf("home directory %s of %s is missing", home, u.Name)}
	case err != nil:
		return []string{fmt.Sprintf("home directory %s of %s: %v", home, u.Name, err)}
	case !st.IsDir():
		return []string{fmt.Sprintf("home directory %s of %s is not a directory", home, u.Name)}
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm() != 0o700 || sys.Uid != u.UID || sys.Gid != gid {
		return []string{fmt.Sprintf("home directory %s has mode %04o, uid %d, gid %d; expected mode 0700, uid %d, gid %d", home, st.Mode().Perm(), sys.Uid, sys.Gid, u.UID, gid)}
	}
	return nil
}

// primaryGroup reports a sandbox user whose primary group is not the
// sandgate group.
func primaryGroup(u accounts.User, group string, gid uint32) []string {
	if u.GID == gid {
		return nil
	}
	return []string{fmt.Sprintf("user %s's primary group is gid %d, not %s (gid %d)", u.Name, u.GID, group, gid)}
}

// checkUser looks a sandbox user up and reports what is wrong with it:
// missing, not sandgate-like, or with another uid than recorded (when rec
// is not empty). ok is true when the user exists.
func checkUser(db *accounts.DB, name, rec string) (u accounts.User, ok bool, diffs []string) {
	u, found, err := db.LookupUser(name)
	if err != nil {
		return u, false, []string{err.Error()}
	}
	if !found {
		return u, false, []string{fmt.Sprintf("user %s does not exist", name)}
	}
	if why := db.NotAdoptable(u); why != "" {
		diffs = append(diffs, fmt.Sprintf("user %s does not look like a sandgate sandbox user: %s", name, why))
	}
	if rec != "" && rec != strconv.FormatUint(uint64(u.UID), 10) {
		diffs = append(diffs, fmt.Sprintf("user %s has uid %d, but the setup marker records uid %s", name, u.UID, rec))
	}
	return u, true, diffs
}

// checkGroup is checkUser for the group.
func checkGroup(db *accounts.DB, name, rec string) (gid uint32, ok bool, diffs []string) {
	gid, _, found, err := db.LookupGroup(name)
	if err != nil {
		return 0, false, []string{err.Error()}
	}
	if !found {
		return 0, false, []string{fmt.Sprintf("group %s does not exist", name)}
	}
	if why := db.GroupNotAdoptable(gid); why != "" {
		diffs = append(diffs, fmt.Sprintf("group %s does not look like sandgate's: %s", name, why))
	}
	if rec != "" && rec != strconv.FormatUint(uint64(gid), 10) {
		diffs = append(diffs, fmt.Sprintf("group %s has gid %d, but the setup marker records gid %s", name, gid, rec))
	}
	return gid, true, diffs
}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`) }) // on first use, not at every start

func validateNames(o Options) error {
	for _, n := range []string{o.OfflineUser, o.OnlineUser, o.Group} {
		if !nameRE().MatchString(n) {
			return fmt.Errorf("%q is not a valid user or group name", n)
		}
	}
	if o.OfflineUser == o.OnlineUser {
		return fmt.Errorf("the offline and online users must differ (both are %s)", o.OfflineUser)
	}
	if !filepath.IsAbs(o.StateDir) || strings.ContainsAny(o.StateDir, ":\n") {
		return fmt.Errorf("the state directory %q must be an absolute path without colons (the users' homes are under it)", o.StateDir)
	}
	return nil
}

// lockName is the lock file that serialises setups in the state directory.
const lockName = ".setup.lock"

// lockState creates the state directory when needed, checks that only root
// can write it (every identity run trusts the marker in it) and takes its
// lock, so that two setups (or a setup and a reconciling run) do not
// interleave.
func lockState(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := rootOwnedDir(dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the setup: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the setup: %w", err)
	}
	return func() { f.Close() }, nil
}

// rootOwnedDir refuses a directory that is a symlink, not owned by root, or
// writable by group or others.
func rootOwnedDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || sys == nil || sys.Uid != 0 || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s must be a directory owned by root and writable only by root", dir)
	}
	return nil
}

// sameMarker compares markers, ignoring when and by what they were written.
func sameMarker(a, b Marker) bool {
	a.InstalledAt, b.InstalledAt = time.Time{}, time.Time{}
	a.InstalledBy, b.InstalledBy = "", ""
	return a.SetupVersion == b.SetupVersion && a.PlanVersion == b.PlanVersion &&
		a.OfflineUser == b.OfflineUser && a.OnlineUser == b.OnlineUser && a.Group == b.Group &&
		a.OfflineID == b.OfflineID && a.OnlineID == b.OnlineID && a.GroupID == b.GroupID &&
		slices.Equal(a.ProxyPorts, b.ProxyPorts) && a.AllowLocalBinding == b.AllowLocalBinding &&
		a.RulesDigest == b.RulesDigest
}

// buildName names this sandgate build for the marker.
func buildName() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	return "sandgate " + v
}

//go:build linux

package accounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DB is the four account databases (passwd, shadow, group, gshadow) of
// one etc directory, read into memory by Read, changed there, and written
// back by Write. Take Lock before reading a DB you mean to write.
type DB struct {
	etc                            string
	passwd, shadow, group, gshadow *accountFile
	ids                            IDRanges
}

// Read reads the databases under etc. With needShadow, unreadable shadow
// files are an error; otherwise shadow and gshadow are optional (gshadow is
// often absent, and neither is readable without root).
func Read(etc string, needShadow bool) (*DB, error) {
	db := &DB{etc: etc}
	var err error
	if db.passwd, err = readAccountFile(filepath.Join(etc, "passwd")); err != nil {
		return nil, err
	}
	if db.group, err = readAccountFile(filepath.Join(etc, "group")); err != nil {
		return nil, err
	}
	if !db.passwd.exists || !db.group.exists {
		return nil, fmt.Errorf("%s has no passwd or group file", etc)
	}
	if db.shadow, err = readAccountFile(filepath.Join(etc, "shadow")); err != nil {
		if needShadow {
			return nil, err
		}
		db.shadow = nil
	}
	if db.shadow != nil && !db.shadow.exists {
		db.shadow.mode = 0o640
	}
	if db.gshadow, err = readAccountFile(filepath.Join(etc, "gshadow")); err != nil {
		if needShadow {
			return nil, err
		}
		db.gshadow = nil
	}
	db.ids = readIDRanges(filepath.Join(etc, "login.defs"))
	return db, nil
}

// Write writes every changed file: groups before users when adding (so no
// user names a group that does not exist yet), users before groups when
// removing.
func (db *DB) Write(removing bool) error {
	order := []*accountFile{db.group, db.gshadow, db.shadow, db.passwd}
	if removing {
		order = []*accountFile{db.passwd, db.shadow, db.group, db.gshadow}
	}
	for _, f := range order {
		if f == nil || (!f.exists && !f.changed) {
			continue
		}
		if !f.exists && (f == db.gshadow || f == db.shadow) {
			continue // do not create a shadow file the system does not use
		}
		if err := f.write(); err != nil {
			return err
		}
	}
	return nil
}

// User is an entry of passwd.
type User struct {
	Name     string
	Password string // the passwd field ("x": see shadow)
	UID, GID uint32
	Gecos    string
	Home     string
	Shell    string
}

// LookupUser returns the passwd entry of name; found is false when there is
// none. A malformed entry is found, with an error.
func (db *DB) LookupUser(name string) (u User, found bool, err error) {
	f, _ := db.passwd.find(name)
	if f == nil {
		return User{}, false, nil
	}
	if len(f) != 7 {
		return User{}, true, fmt.Errorf("the passwd entry of %s is malformed (%d fields)", name, len(f))
	}
	uid, err1 := strconv.ParseUint(f[2], 10, 32)
	gid, err2 := strconv.ParseUint(f[3], 10, 32)
	if err1 != nil || err2 != nil {
		return User{}, true, fmt.Errorf("the passwd entry of %s has a malformed uid or gid", name)
	}
	return User{Name: f[0], Password: f[1], UID: uint32(uid), GID: uint32(gid), Gecos: f[4], Home: f[5], Shell: f[6]}, true, nil
}

// LookupGroup returns the gid and members of the group name; found is false
// when there is none. A malformed entry is found, with an error.
func (db *DB) LookupGroup(name string) (gid uint32, members []string, found bool, err error) {
	f, _ := db.group.find(name)
	if f == nil {
		return 0, nil, false, nil
	}
	if len(f) != 4 {
		return 0, nil, true, fmt.Errorf("the group entry of %s is malformed (%d fields)", name, len(f))
	}
	g, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return 0, nil, true, fmt.Errorf("the group entry of %s has a malformed gid", name)
	}
	if f[3] != "" {
		members = strings.Split(f[3], ",")
	}
	return uint32(g), members, true, nil
}

// usedIDs returns the ids in use in field 2 of f's entries.
func usedIDs(f *accountFile) map[uint32]bool {
	used := map[uint32]bool{}
	for _, e := range f.entries() {
		if len(e) > 2 {
			if n, err := strconv.ParseUint(e[2], 10, 32); err == nil {
				used[uint32(n)] = true
			}
		}
	}
	return used
}

// freeID returns the highest id in [lo, hi] that used does not hold (system
// ids are taken from the top down, as useradd -r does).
func freeID(used map[uint32]bool, lo, hi uint32, what string) (uint32, error) {
	for id := hi; id >= lo && id > 0; id-- {
		if !used[id] {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no free system %s id between %d and %d", what, lo, hi)
}

// IDRanges are the system id ranges of login.defs.
type IDRanges struct {
	UIDMin, UIDMax, GIDMin, GIDMax uint32
}

// readIDRanges reads SYS_UID_MIN/MAX and SYS_GID_MIN/MAX from login.defs,
// defaulting to 100-999 (the Debian policy range) and to UID_MIN-1 and
// GID_MIN-1 for the maxima when only those are given.
func readIDRanges(path string) IDRanges {
	r := IDRanges{UIDMin: 100, UIDMax: 999, GIDMin: 100, GIDMax: 999}
	defs := map[string]uint32{}
	if data, err := os.ReadFile(path); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 2 || strings.HasPrefix(fs[0], "#") {
				continue
			}
			if n, err := strconv.ParseUint(fs[1], 10, 32); err == nil {
				defs[fs[0]] = uint32(n)
			}
		}
	}
	pick := func(dst *uint32, key string) bool {
		if v, ok := defs[key]; ok {
			*dst = v
			return true
		}
		return false
	}
	pick(&r.UIDMin, "SYS_UID_MIN")
	pick(&r.GIDMin, "SYS_GID_MIN")
	if !pick(&r.UIDMax, "SYS_UID_MAX") {
		if v, ok := defs["UID_MIN"]; ok && v > 1 {
			r.UIDMax = v - 1
		}
	}
	if !pick(&r.GIDMax, "SYS_GID_MAX") {
		if v, ok := defs["GID_MIN"]; ok && v > 1 {
			r.GIDMax = v - 1
		}
	}
	if r.UIDMin == 0 {
		r.UIDMin = 1
	}
	if r.GIDMin == 0 {
		r.GIDMin = 1
	}
	return r
}

// NoLoginShell returns the shell given to the sandbox users.
func NoLoginShell() string {
	for _, s := range []string{"/usr/sbin/nologin", "/sbin/nologin"} {
		if st, err := os.Stat(s); err == nil && st.Mode().IsRegular() {
			return s
		}
	}
	return "/bin/false"
}

// isNoLogin reports whether shell refuses interactive logins.
func isNoLogin(shell string) bool {
	switch filepath.Base(shell) {
	case "nologin", "false":
		return true
	}
	return false
}

// locked reports whether a password field admits no password.
func locked(pw string) bool {
	return strings.HasPrefix(pw, "!") || strings.HasPrefix(pw, "*")
}

// NotAdoptable says why an existing user cannot be adopted as a sandbox
// user, or "" when it can: it needs a system uid (not root), a shell that
// refuses logins and no usable password.
func (db *DB) NotAdoptable(u User) string {
	switch {
	case u.UID == 0:
		return "it has uid 0"
	case u.UID < db.ids.UIDMin || u.UID > db.ids.UIDMax:
		return fmt.Sprintf("its uid %d is not a system uid (%d-%d)", u.UID, db.ids.UIDMin, db.ids.UIDMax)
	case !isNoLogin(u.Shell):
		return fmt.Sprintf("its shell %s allows logins", u.Shell)
	}
	pw := u.Password
	if pw == "x" && db.shadow != nil {
		if f, _ := db.shadow.find(u.Name); f != nil && len(f) > 1 {
			pw = f[1]
		}
	}
	if pw != "x" && !locked(pw) {
		return "it has a usable password"
	}
	return ""
}

// GroupNotAdoptable says why an existing group with gid cannot be adopted
// as the sandbox group, or "" when it can (a system gid, not root's).
func (db *DB) GroupNotAdoptable(gid uint32) string {
	if gid == 0 || gid < db.ids.GIDMin || gid > db.ids.GIDMax {
		return fmt.Sprintf("its gid %d is not a system gid (%d-%d)", gid, db.ids.GIDMin, db.ids.GIDMax)
	}
	return ""
}

// AddGroup adds a system group with a free gid and returns the gid. A stale
// gshadow entry of the name is refused.
func (db *DB) AddGroup(name string) (uint32, error) {
	// A stale gshadow entry would keep its password and members, and the
	// system reads the first entry of a name: refuse, as groupadd does.
	if db.gshadow != nil {
		if f, _ := db.gshadow.find(name); f != nil {
			return 0, fmt.Errorf("%s already has an entry for group %s but %s has none; remove the stale entry first", db.gshadow.path, name, db.group.path)
		}
	}
	gid, err := freeID(usedIDs(db.group), db.ids.GIDMin, db.ids.GIDMax, "group")
	if err != nil {
		return 0, err
	}
	db.group.add(name, "x", strconv.FormatUint(uint64(gid), 10), "")
	if db.gshadow != nil && db.gshadow.exists {
		db.gshadow.add(name, "!", "", "")
	}
	return gid, nil
}

// AddUser adds a system user with a free uid, the given primary group and
// home, no password and a shell that refuses logins, and returns the uid. A
// stale shadow entry of the name is refused.
func (db *DB) AddUser(name string, gid uint32, home, gecos string) (uint32, error) {
	// A stale shadow entry would give the new user its password hash, and
	// the system reads the first entry of a name: refuse, as useradd does.
	if db.shadow != nil {
		if f, _ := db.shadow.find(name); f != nil {
			return 0, fmt.Errorf("%s already has an entry for user %s but %s has none; remove the stale entry first", db.shadow.path, name, db.passwd.path)
		}
	}
	uid, err := freeID(usedIDs(db.passwd), db.ids.UIDMin, db.ids.UIDMax, "user")
	if err != nil {
		return 0, err
	}
	u := User{Name: name, UID: uid, GID: gid, Gecos: gecos, Home: home, Shell: NoLoginShell()}
	if err := db.AddUserEntry(u); err != nil {
		return 0, err
	}
	return uid, nil
}

// RemoveUser deletes a user from passwd and shadow and from every group's
// member list; it reports whether passwd had the user.
func (db *DB) RemoveUser(name string) bool {
	removed := db.passwd.remove(name)
	if db.shadow != nil {
		db.shadow.remove(name)
	}
	for _, f := range []*accountFile{db.group, db.gshadow} {
		if f == nil {
			continue
		}
		fields := []int{3} // group: name:x:gid:members
		if f == db.gshadow {
			fields = []int{2, 3} // gshadow: name:password:admins:members
		}
		for i, l := range f.lines {
			e := strings.Split(l, ":")
			if len(e) != 4 || strings.HasPrefix(l, "#") {
				continue
			}
			changed := false
			for _, fld := range fields {
				if e[fld] == "" {
					continue
				}
				var keep []string
				for _, m := range strings.Split(e[fld], ",") {
					if m != name {
						keep = append(keep, m)
					}
				}
				if nv := strings.Join(keep, ","); nv != e[fld] {
					e[fld], changed = nv, true
				}
			}
			if changed {
				f.set(i, e)
			}
		}
	}
	return removed
}

// RemoveGroup deletes a group from group and gshadow; it reports whether
// group had it.
func (db *DB) RemoveGroup(name string) bool {
	removed := db.group.remove(name)
	if db.gshadow != nil {
		db.gshadow.remove(name)
	}
	return removed
}

// LockWait is how long Lock waits for another program's lock.
const LockWait = 15 * time.Second

// Lock takes the lock of the account databases under etc, the write lock
// on .pwd.lock that shadow-utils (lckpwdf), systemd and other account tools
// take before changing them, waiting up to LockWait. It is an
// open-file-description lock, so it also excludes other goroutines of this
// process.
func Lock(etc string) (unlock func(), err error) { return lock(etc, LockWait) }

// lock is Lock waiting up to wait.
func lock(etc string, lockWait time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(etc, ".pwd.lock"), os.O_WRONLY|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the account databases: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	deadline := time.Now().Add(lockWait)
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			f.Close()
			return nil, fmt.Errorf("locking the account databases (%s): %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("the account databases are locked by another program (%s held for %v)", f.Name(), lockWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SetPrimaryGroup makes gid the primary group of the user name.
func (db *DB) SetPrimaryGroup(name string, gid uint32) error {
	f, at := db.passwd.find(name)
	if len(f) != 7 {
		return fmt.Errorf("no well-formed passwd entry for %s", name)
	}
	f[3] = strconv.FormatUint(uint64(gid), 10)
	db.passwd.set(at, f)
	return nil
}

// PrimaryGroupUser returns the first user whose primary group is gid.
func (db *DB) PrimaryGroupUser(gid uint32) (name string, found bool) {
	want := strconv.FormatUint(uint64(gid), 10)
	for _, e := range db.passwd.entries() {
		if len(e) > 3 && e[3] == want {
			return e[0], true
		}
	}
	return "", false
}

// AddUserEntry adds u as it is (its ids, home and shell), with a locked
// password in shadow when the system has one, as another account tool
// would have made it. A user of the same name is refused.
func (db *DB) AddUserEntry(u User) error {
	if f, _ := db.passwd.find(u.Name); f != nil {
		return fmt.Errorf("user %s already exists", u.Name)
	}
	pw := "!"
	if db.shadow != nil && db.shadow.exists {
		pw = "x"
		db.shadow.add(u.Name, "!", strconv.FormatInt(time.Now().Unix()/86400, 10), "", "", "", "", "", "")
	}
	db.passwd.add(u.Name, pw, strconv.FormatUint(uint64(u.UID), 10), strconv.FormatUint(uint64(u.GID), 10), u.Gecos, u.Home, u.Shell)
	return nil
}

// ShadowPassword returns the password field of name's shadow entry.
func (db *DB) ShadowPassword(name string) (string, bool) {
	if db.shadow == nil {
		return "", false
	}
	if f, _ := db.shadow.find(name); len(f) > 1 {
		return f[1], true
	}
	return "", false
}

// IDs returns the system id ranges of the DB's login.defs.
func (db *DB) IDs() IDRanges { return db.ids }

// UsedUIDs returns the uids passwd holds.
func (db *DB) UsedUIDs() map[uint32]bool { return usedIDs(db.passwd) }

// UsedGIDs returns the gids group holds.
func (db *DB) UsedGIDs() map[uint32]bool { return usedIDs(db.group) }

// ProcessesOf returns the pids of processes with uid as real, effective,
// saved or filesystem uid.
func ProcessesOf(uid uint32) []string {
	ents, _ := os.ReadDir("/proc")
	var pids []string
	want := strconv.FormatUint(uint64(uid), 10)
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				if slices.Contains(strings.Fields(rest), want) {
					pids = append(pids, e.Name())
				}
				break
			}
		}
	}
	return pids
}

//go:build linux

package setup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// This file edits the account databases (passwd, shadow, group, gshadow)
// directly, as shadow-utils does, so that setup needs no useradd or
// groupadd at run time: it takes the lock every account tool honours
// (.pwd.lock), reads the files, changes lines, and replaces each file with
// a complete new copy (same mode and owner) by an atomic rename.

// accountFile is one colon-separated account database, line by line.
type accountFile struct {
	path    string
	exists  bool
	lines   []string // every line as read, comments and NIS lines included
	mode    fs.FileMode
	uid     int
	gid     int
	changed bool
}

func readAccountFile(path string) (*accountFile, error) {
	f := &accountFile{path: path, mode: 0o644}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	f.exists = true
	f.mode = st.Mode().Perm()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		f.uid, f.gid = int(sys.Uid), int(sys.Gid)
	}
	// Split on "\n" only: every other byte, "\r" included, belongs to its
	// line (glibc reads a trailing "\r" as part of the last field), and a
	// rewrite must keep other entries byte for byte.
	text := string(data)
	text = strings.TrimSuffix(text, "\n")
	if text != "" || len(data) > 0 {
		f.lines = strings.Split(text, "\n")
	}
	return f, nil
}

// find returns the fields of the entry named name, and its line index, or
// -1 when there is none.
func (f *accountFile) find(name string) ([]string, int) {
	for i, l := range f.lines {
		if n, _, ok := strings.Cut(l, ":"); ok && n == name {
			return strings.Split(l, ":"), i
		}
	}
	return nil, -1
}

// entries returns the fields of every entry (lines that are not comments or
// NIS references).
func (f *accountFile) entries() [][]string {
	var out [][]string
	for _, l := range f.lines {
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
			continue
		}
		out = append(out, strings.Split(l, ":"))
	}
	return out
}

// add appends an entry, before NIS "+" lines when there are any (they must
// stay last). A field holding a colon or a newline is a bug of the caller.
func (f *accountFile) add(fields ...string) {
	for _, x := range fields {
		if strings.ContainsAny(x, ":\n") {
			panic(fmt.Sprintf("setup: account field %q holds a separator", x))
		}
	}
	line := strings.Join(fields, ":")
	at := len(f.lines)
	for i, l := range f.lines {
		if strings.HasPrefix(l, "+") {
			at = i
			break
		}
	}
	f.lines = append(f.lines[:at], append([]string{line}, f.lines[at:]...)...)
	f.changed = true
}

// remove deletes the entry named name; it reports whether there was one.
func (f *accountFile) remove(name string) bool {
	_, i := f.find(name)
	if i < 0 {
		return false
	}
	f.lines = append(f.lines[:i], f.lines[i+1:]...)
	f.changed = true
	return true
}

// set replaces the fields of the entry at line i.
func (f *accountFile) set(i int, fields []string) {
	f.lines[i] = strings.Join(fields, ":")
	f.changed = true
}

// write replaces the file with its new content: a backup of the old one at
// PATH- (as shadow-utils keeps), then a temporary file with the same mode
// and owner, synced and renamed over the original.
func (f *accountFile) write() error {
	if !f.changed {
		return nil
	}
	var b bytes.Buffer
	for _, l := range f.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if f.exists {
		old, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("backing up %s: %w", f.path, err)
		}
		if err := f.replace(f.path+"-", old); err != nil {
			return fmt.Errorf("backing up %s: %w", f.path, err)
		}
	}
	if err := f.replace(f.path, b.Bytes()); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	f.changed = false
	f.exists = true
	return nil
}

func (f *accountFile) replace(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".sandgate-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(f.mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chown(f.uid, f.gid); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// accountDB is the four account databases of one /etc.
type accountDB struct {
	etc                            string
	passwd, shadow, group, gshadow *accountFile
	ids                            idRanges
}

// readAccounts reads the databases under etc. shadow and gshadow are
// optional (gshadow is often absent, and neither is readable without root).
func readAccounts(etc string, needShadow bool) (*accountDB, error) {
	db := &accountDB{etc: etc}
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

// write writes every changed file: groups before users when adding (so no
// user names a group that does not exist yet), users before groups when
// removing.
func (db *accountDB) write(removing bool) error {
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

// user is an entry of passwd.
type user struct {
	name     string
	password string // the passwd field ("x": see shadow)
	uid, gid uint32
	gecos    string
	home     string
	shell    string
}

func (db *accountDB) lookupUser(name string) (user, bool, error) {
	f, _ := db.passwd.find(name)
	if f == nil {
		return user{}, false, nil
	}
	if len(f) != 7 {
		return user{}, true, fmt.Errorf("the passwd entry of %s is malformed (%d fields)", name, len(f))
	}
	uid, err1 := strconv.ParseUint(f[2], 10, 32)
	gid, err2 := strconv.ParseUint(f[3], 10, 32)
	if err1 != nil || err2 != nil {
		return user{}, true, fmt.Errorf("the passwd entry of %s has a malformed uid or gid", name)
	}
	return user{name: f[0], password: f[1], uid: uint32(uid), gid: uint32(gid), gecos: f[4], home: f[5], shell: f[6]}, true, nil
}

func (db *accountDB) lookupGroup(name string) (gid uint32, members []string, found bool, err error) {
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

// idRanges are the system id ranges of login.defs.
type idRanges struct {
	uidMin, uidMax, gidMin, gidMax uint32
}

// readIDRanges reads SYS_UID_MIN/MAX and SYS_GID_MIN/MAX from login.defs,
// defaulting to 100-999 (the Debian policy range) and to UID_MIN-1 and
// GID_MIN-1 for the maxima when only those are given.
func readIDRanges(path string) idRanges {
	r := idRanges{uidMin: 100, uidMax: 999, gidMin: 100, gidMax: 999}
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
	pick(&r.uidMin, "SYS_UID_MIN")
	pick(&r.gidMin, "SYS_GID_MIN")
	if !pick(&r.uidMax, "SYS_UID_MAX") {
		if v, ok := defs["UID_MIN"]; ok && v > 1 {
			r.uidMax = v - 1
		}
	}
	if !pick(&r.gidMax, "SYS_GID_MAX") {
		if v, ok := defs["GID_MIN"]; ok && v > 1 {
			r.gidMax = v - 1
		}
	}
	if r.uidMin == 0 {
		r.uidMin = 1
	}
	if r.gidMin == 0 {
		r.gidMin = 1
	}
	return r
}

// noLoginShell returns the shell given to the sandbox users.
func noLoginShell() string {
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

// notOurs says why an existing user cannot be adopted as a sandbox user, or
// "" when it can: a system uid (not root), a shell that refuses logins and
// no usable password.
func (db *accountDB) notOurs(u user) string {
	switch {
	case u.uid == 0:
		return "it has uid 0"
	case u.uid < db.ids.uidMin || u.uid > db.ids.uidMax:
		return fmt.Sprintf("its uid %d is not a system uid (%d-%d)", u.uid, db.ids.uidMin, db.ids.uidMax)
	case !isNoLogin(u.shell):
		return fmt.Sprintf("its shell %s allows logins", u.shell)
	}
	pw := u.password
	if pw == "x" && db.shadow != nil {
		if f, _ := db.shadow.find(u.name); f != nil && len(f) > 1 {
			pw = f[1]
		}
	}
	if pw != "x" && !locked(pw) {
		return "it has a usable password"
	}
	return ""
}

// groupNotOurs says why an existing group cannot be adopted, or "".
func (db *accountDB) groupNotOurs(gid uint32) string {
	if gid == 0 || gid < db.ids.gidMin || gid > db.ids.gidMax {
		return fmt.Sprintf("its gid %d is not a system gid (%d-%d)", gid, db.ids.gidMin, db.ids.gidMax)
	}
	return ""
}

// addGroup adds a system group with a free gid and returns the gid.
func (db *accountDB) addGroup(name string) (uint32, error) {
	// A stale gshadow entry would keep its password and members, and the
	// system reads the first entry of a name: refuse, as groupadd does.
	if db.gshadow != nil {
		if f, _ := db.gshadow.find(name); f != nil {
			return 0, fmt.Errorf("%s already has an entry for group %s but %s has none; remove the stale entry first", db.gshadow.path, name, db.group.path)
		}
	}
	gid, err := freeID(usedIDs(db.group), db.ids.gidMin, db.ids.gidMax, "group")
	if err != nil {
		return 0, err
	}
	db.group.add(name, "x", strconv.FormatUint(uint64(gid), 10), "")
	if db.gshadow != nil && db.gshadow.exists {
		db.gshadow.add(name, "!", "", "")
	}
	return gid, nil
}

// addUser adds a system user with a free uid, the given primary group and
// home, no password and a shell that refuses logins.
func (db *accountDB) addUser(name string, gid uint32, home, gecos string) (uint32, error) {
	// A stale shadow entry would give the new user its password hash, and
	// the system reads the first entry of a name: refuse, as useradd does.
	if db.shadow != nil {
		if f, _ := db.shadow.find(name); f != nil {
			return 0, fmt.Errorf("%s already has an entry for user %s but %s has none; remove the stale entry first", db.shadow.path, name, db.passwd.path)
		}
	}
	uid, err := freeID(usedIDs(db.passwd), db.ids.uidMin, db.ids.uidMax, "user")
	if err != nil {
		return 0, err
	}
	pw := "!"
	if db.shadow != nil && db.shadow.exists {
		pw = "x"
		days := strconv.FormatInt(time.Now().Unix()/86400, 10)
		db.shadow.add(name, "!", days, "", "", "", "", "", "")
	}
	db.passwd.add(name, pw, strconv.FormatUint(uint64(uid), 10), strconv.FormatUint(uint64(gid), 10), gecos, home, noLoginShell())
	return uid, nil
}

// removeUser deletes a user from passwd and shadow and from every group's
// member list.
func (db *accountDB) removeUser(name string) bool {
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

// removeGroup deletes a group from group and gshadow.
func (db *accountDB) removeGroup(name string) bool {
	removed := db.group.remove(name)
	if db.gshadow != nil {
		db.gshadow.remove(name)
	}
	return removed
}

// lockWait is how long lockAccounts waits for another program's lock.
var lockWait = 15 * time.Second

// lockAccounts takes the lock of the account databases under etc, the
// write lock on .pwd.lock that shadow-utils (lckpwdf), systemd and other
// account tools take before changing them, waiting up to 15 seconds. It is
// an open-file-description lock, so it also excludes other goroutines of
// this process.
func lockAccounts(etc string) (unlock func(), err error) {
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

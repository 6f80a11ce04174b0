//go:build linux

package accounts

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fuzzDir returns an empty directory for one fuzz input, on tmpfs when there
// is one (the account files are written with fsync).
func fuzzDir(t *testing.T) string {
	t.Helper()
	if d, err := os.MkdirTemp("/dev/shm", "sandgate-fuzz-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

// fileLines splits data into lines as an account file holds them: every
// "\n" ends a line; a last line without one is a line too.
func fileLines(data string) []string {
	if data == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(data, "\n"), "\n")
}

// sameLine reports whether got is the line want as read back.
//
// Lines are kept byte for byte, a "\r" included: glibc reads it as part of
// the last field (a group's member list, a user's shell).
func sameLine(want, got string) bool {
	return got == want
}

func sameLines(want, got []string) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if !sameLine(want[i], got[i]) {
			return false
		}
	}
	return true
}

// checkRewritten fails unless the file at path holds lines, each ended by
// "\n".
func checkRewritten(t *testing.T, path string, lines []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if len(lines) > 0 && !strings.HasSuffix(s, "\n") {
		t.Fatalf("%s: %q does not end with a newline", path, s)
	}
	if got := fileLines(s); !sameLines(lines, got) {
		t.Fatalf("%s holds %q, want the lines %q", path, got, lines)
	}
}

// The product's names (package setup's defaults), which the seeds use.
const (
	OfflineUser = "sandgate-offline"
	OnlineUser  = "sandgate-online"
	Group       = "sandgate"
)

var fuzzAccountSeeds = []string{
	samplePasswd, sampleShadow, sampleGroup, sampleGshadow, sampleLoginDefs,
	"", "\n", "no newline at the end", "a:b\r\nc:d\r\n", "#\n+\n-\n::::::\n",
	"sandgate-offline:x:150:150::/var/lib/sandgate/home/sandgate-offline:/usr/sbin/nologin\n",
	"sandgate:x:150:sandgate-offline,sandgate-online\n",
	"x\x00y:\xff\n\n\n",
}

// FuzzAccountFile checks that an account file read and rewritten without
// changes comes back line for line (a missing final newline is added), and
// that the backup is the old file byte for byte.
func FuzzAccountFile(f *testing.F) {
	for _, s := range fuzzAccountSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(fuzzDir(t), "passwd")
		if err := os.WriteFile(path, data, 0o640); err != nil {
			t.Fatal(err)
		}
		af, err := readAccountFile(path)
		if err != nil {
			if len(data) < 1<<20 {
				t.Fatalf("readAccountFile(%q): %v", data, err)
			}
			return
		}
		want := fileLines(string(data))
		if !af.exists || !sameLines(want, af.lines) {
			t.Fatalf("readAccountFile(%q) = %q (exists %v), want %q", data, af.lines, af.exists, want)
		}
		if af.mode != 0o640 {
			t.Fatalf("mode %v, want 0640", af.mode)
		}
		af.changed = true
		if err := af.write(); err != nil {
			t.Fatal(err)
		}
		checkRewritten(t, path, want)
		if !strings.Contains(string(data), "\r") {
			exact := string(data)
			if exact != "" && !strings.HasSuffix(exact, "\n") {
				exact += "\n"
			}
			if got, _ := os.ReadFile(path); string(got) != exact {
				t.Fatalf("rewritten %q as %q", data, got)
			}
		}
		if backup, err := os.ReadFile(path + "-"); err != nil || string(backup) != string(data) {
			t.Fatalf("backup = %q, %v; want %q", backup, err, data)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
			t.Fatalf("rewritten file: %v, %v", st, err)
		}
	})
}

// FuzzLoginDefs checks readIDRanges on any login.defs: the minima are never
// 0, and values appended after any content are the ones read.
func FuzzLoginDefs(f *testing.F) {
	f.Add(sampleLoginDefs, uint32(200), uint32(300), uint32(250), uint32(300))
	f.Add("UID_MIN 1000\nGID_MIN 1\n", uint32(0), uint32(0), uint32(1), uint32(4294967295))
	f.Add("SYS_UID_MIN\t0x10\n#SYS_GID_MIN 5\nSYS_GID_MAX 99999999999\r\n", uint32(100), uint32(999), uint32(100), uint32(999))
	f.Fuzz(func(t *testing.T, junk string, uidMin, uidMax, gidMin, gidMax uint32) {
		path := filepath.Join(fuzzDir(t), "login.defs")
		if err := os.WriteFile(path, []byte(junk), 0o644); err != nil {
			t.Fatal(err)
		}
		r := readIDRanges(path)
		if r.UIDMin == 0 || r.GIDMin == 0 {
			t.Fatalf("readIDRanges(%q) = %+v: a minimum of 0", junk, r)
		}
		defs := junk + "\nSYS_UID_MIN " + strconv.FormatUint(uint64(uidMin), 10) +
			"\n  SYS_UID_MAX\t" + strconv.FormatUint(uint64(uidMax), 10) +
			"\nSYS_GID_MIN " + strconv.FormatUint(uint64(gidMin), 10) + " # comment" +
			"\nSYS_GID_MAX " + strconv.FormatUint(uint64(gidMax), 10) + "\n"
		if err := os.WriteFile(path, []byte(defs), 0o644); err != nil {
			t.Fatal(err)
		}
		want := IDRanges{max(uidMin, 1), uidMax, max(gidMin, 1), gidMax}
		if got := readIDRanges(path); got != want {
			t.Fatalf("readIDRanges(%q) = %+v, want %+v", defs, got, want)
		}
	})
}

// tokens returns every ":"- and ","-separated token of the files' lines.
func tokens(files ...string) map[string]bool {
	m := map[string]bool{}
	for _, f := range files {
		for _, l := range strings.Split(f, "\n") {
			for _, fld := range strings.Split(l, ":") {
				for _, x := range strings.Split(fld, ",") {
					m[strings.TrimSuffix(x, "\r")] = true
				}
			}
		}
	}
	return m
}

// checkInsert fails unless after is before with one line inserted, not
// after a NIS "+" line, and returns the index of that line.
func checkInsert(t *testing.T, what string, before, after []string) int {
	t.Helper()
	if len(after) != len(before)+1 {
		t.Fatalf("%s: %d lines, then %d", what, len(before), len(after))
	}
	at := 0
	for at < len(before) && before[at] == after[at] {
		at++
	}
	if !slices.Equal(after[at+1:], before[at:]) {
		t.Fatalf("%s: lines changed: %q, then %q", what, before, after)
	}
	if slices.ContainsFunc(after[:at], func(l string) bool { return strings.HasPrefix(l, "+") }) {
		t.Fatalf("%s: line %q added after a NIS line: %q", what, after[at], after)
	}
	return at
}

// hasEntry reports whether lines hold an entry named name.
func hasEntry(lines []string, name string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, name+":") })
}

// noFreeID reports whether every id of [lo, hi] is in used.
func noFreeID(used map[uint32]bool, lo, hi uint32) bool {
	return lo > hi || uint64(hi-lo)+1 <= uint64(len(used))
}

// FuzzAccounts runs what setup and uninstall do to the account databases
// on arbitrary passwd, shadow, group, gshadow and login.defs files: lookups
// never panic and return what the line says; users and groups are added
// with free ids of the system range, before NIS lines, and are then found;
// every other line stays as it was; removing them again restores the files.
func FuzzAccounts(f *testing.F) {
	f.Add(samplePasswd, sampleShadow, sampleGroup, sampleGshadow, sampleLoginDefs)
	f.Add(samplePasswd, "", sampleGroup, "", "")
	f.Add(fuzzAccountSeeds[10], "sandgate-offline:!:1::::::\n", fuzzAccountSeeds[11], "sandgate:!::sandgate-online\n", "SYS_UID_MIN 150\nSYS_UID_MAX 150\n")
	f.Add("sandgate-online:x:0:0::/:/bin/sh\n", "", "sandgate:x:70000:\n", "", "SYS_GID_MIN 5\nSYS_GID_MAX 4\n")
	f.Add("a:x:1:1::/:/bin/sh\n+\n", "a:*:::::::\n", "g:x:1:\n+:::\n", "g:!::\n", "SYS_UID_MIN 1\nSYS_UID_MAX 1\n")
	f.Fuzz(func(t *testing.T, passwd, shadow, group, gshadow, loginDefs string) {
		etc := fuzzDir(t)
		files := map[string]string{"passwd": passwd, "shadow": shadow, "group": group, "gshadow": gshadow}
		for name, content := range files {
			if content == "" && strings.HasSuffix(name, "shadow") {
				continue // absent
			}
			if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(etc, "login.defs"), []byte(loginDefs), 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := Read(etc, true)
		if err != nil {
			t.Fatalf("readAccounts: %v", err)
		}
		if db.ids.UIDMin == 0 || db.ids.GIDMin == 0 {
			t.Fatalf("id ranges %+v", db.ids)
		}
		hasShadow, hasGshadow := shadow != "", gshadow != ""
		if db.shadow.exists != hasShadow || db.gshadow.exists != hasGshadow {
			t.Fatal("shadow files read wrong")
		}
		names := []string{OfflineUser, OnlineUser}

		// Lookups return what the line says.
		for _, name := range names {
			u, found, err := db.LookupUser(name)
			fields, _ := db.passwd.find(name)
			if found != (fields != nil) || !found && (u != User{} || err != nil) {
				t.Fatalf("lookupUser(%q) = %+v, %v, %v; entry %q", name, u, found, err, fields)
			}
			if found && err == nil {
				if len(fields) != 7 || u.Name != name || u.Password != fields[1] || u.Gecos != fields[4] || u.Home != fields[5] || u.Shell != fields[6] ||
					strconv.FormatUint(uint64(u.UID), 10) != strings.TrimLeft(fields[2], "0") && u.UID != 0 {
					t.Fatalf("lookupUser(%q) = %+v from %q", name, u, fields)
				}
				db.NotAdoptable(u)
			}
		}
		gid, members, gFound, err := db.LookupGroup(Group)
		if gFound && err == nil {
			fields, _ := db.group.find(Group)
			if len(fields) != 4 || !slices.Equal(members, strings.Split(fields[3], ",")) && fields[3] != "" {
				t.Fatalf("lookupGroup(%q) = %d, %q from %q", Group, gid, members, fields)
			}
			db.GroupNotAdoptable(gid)
		}

		// Setup's additions, when nothing is there yet.
		_, u0, _ := db.LookupUser(names[0])
		_, u1, _ := db.LookupUser(names[1])
		if gFound || u0 || u1 {
			return
		}
		usedG := usedIDs(db.group)
		beforeG, beforeGS := slices.Clone(db.group.lines), slices.Clone(db.gshadow.lines)
		staleG, _ := db.gshadow.find(Group)
		gid, err = db.AddGroup(Group)
		if err != nil {
			if staleG == nil && !noFreeID(usedG, db.ids.GIDMin, db.ids.GIDMax) {
				t.Fatalf("addGroup: %v (range %d-%d)", err, db.ids.GIDMin, db.ids.GIDMax)
			}
			return
		}
		if gid < db.ids.GIDMin || gid > db.ids.GIDMax || usedG[gid] {
			t.Fatalf("addGroup: gid %d, range %d-%d, used %v", gid, db.ids.GIDMin, db.ids.GIDMax, usedG[gid])
		}
		checkInsert(t, "group", beforeG, db.group.lines)
		if g, m, ok, err := db.LookupGroup(Group); !ok || err != nil || g != gid || len(m) != 0 {
			t.Fatalf("lookupGroup after addGroup = %d, %q, %v, %v; want %d", g, m, ok, err, gid)
		}
		if hasGshadow {
			at := checkInsert(t, "gshadow", beforeGS, db.gshadow.lines)
			// A stale entry of the same name is refused above, so the one
			// added is the one the system uses.
			if _, i := db.gshadow.find(Group); i != at {
				t.Fatalf("gshadow entry of %s at %d, added at %d", Group, i, at)
			}
		} else if !slices.Equal(db.gshadow.lines, beforeGS) {
			t.Fatal("addGroup wrote to an absent gshadow")
		}
		home := "/nonexistent/" + OfflineUser
		var uids []uint32
		for _, name := range names {
			usedU := usedIDs(db.passwd)
			beforeP, beforeS := slices.Clone(db.passwd.lines), slices.Clone(db.shadow.lines)
			staleU, _ := db.shadow.find(name)
			uid, err := db.AddUser(name, gid, home, "gecos")
			if err != nil {
				if staleU == nil && !noFreeID(usedU, db.ids.UIDMin, db.ids.UIDMax) {
					t.Fatalf("addUser(%s): %v (range %d-%d)", name, err, db.ids.UIDMin, db.ids.UIDMax)
				}
				return
			}
			if uid < db.ids.UIDMin || uid > db.ids.UIDMax || usedU[uid] || slices.Contains(uids, uid) {
				t.Fatalf("addUser(%s): uid %d, range %d-%d", name, uid, db.ids.UIDMin, db.ids.UIDMax)
			}
			uids = append(uids, uid)
			checkInsert(t, "passwd", beforeP, db.passwd.lines)
			u, ok, err := db.LookupUser(name)
			if !ok || err != nil || u.UID != uid || u.GID != gid || u.Home != home || u.Gecos != "gecos" || !isNoLogin(u.Shell) {
				t.Fatalf("lookupUser after addUser(%s) = %+v, %v, %v", name, u, ok, err)
			}
			if hasShadow {
				at := checkInsert(t, "shadow", beforeS, db.shadow.lines)
				if _, i := db.shadow.find(name); i != at {
					t.Fatalf("shadow entry of %s at %d, added at %d", name, i, at)
				}
				if u.Password != "x" || !strings.HasPrefix(db.shadow.lines[at], name+":!:") {
					t.Fatalf("addUser(%s): password %q, shadow %q", name, u.Password, db.shadow.lines[at])
				}
			} else if u.Password != "!" || !slices.Equal(db.shadow.lines, beforeS) {
				t.Fatalf("addUser(%s) without shadow: password %q, shadow %q", name, u.Password, db.shadow.lines)
			}
			if why := db.NotAdoptable(u); why != "" && !hasEntry(fileLines(shadow), name) {
				t.Fatalf("addUser(%s) made a user setup would not adopt: %s", name, why)
			}
		}
		if err := db.Write(false); err != nil {
			t.Fatal(err)
		}
		for _, af := range []*accountFile{db.passwd, db.shadow, db.group, db.gshadow} {
			if af.exists {
				checkRewritten(t, af.path, af.lines)
			}
		}
		if _, err := os.Stat(filepath.Join(etc, "gshadow")); hasGshadow == os.IsNotExist(err) {
			t.Fatalf("gshadow created or removed: %v", err)
		}

		// Uninstall's removals give back the files as they were, unless the
		// names were already mentioned in them (say, as a group member).
		db2, err := Read(etc, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if !db2.RemoveUser(name) {
				t.Fatalf("removeUser(%s): not there", name)
			}
		}
		if !db2.RemoveGroup(Group) {
			t.Fatalf("removeGroup(%s): not there", Group)
		}
		if err := db2.Write(true); err != nil {
			t.Fatal(err)
		}
		if tok := tokens(passwd, shadow, group, gshadow); tok[OfflineUser] || tok[OnlineUser] || tok[Group] {
			return
		}
		for name, data := range files {
			if data != "" || !strings.HasSuffix(name, "shadow") {
				checkRewritten(t, filepath.Join(etc, name), fileLines(data))
			}
		}
	})
}

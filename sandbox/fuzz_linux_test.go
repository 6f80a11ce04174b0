//go:build linux

package sandbox

import (
	"slices"
	"testing"
)

// fuzzACLSeeds are attribute values: valid ACLs of several shapes and a few
// broken ones.
func fuzzACLSeeds() [][]byte {
	seeds := [][]byte{
		aclFromMode(0o750).encode(),
		aclFromMode(0o777).encode(),
		acl{
			{aclUserObj, 7, aclUndefinedID},
			{aclUser, 5, 1000},
			{aclGroupObj, 5, aclUndefinedID},
			{aclGroup, 7, 2000},
			{aclGroup, 1, 2001},
			{aclMask, 5, aclUndefinedID},
			{aclOther, 0, aclUndefinedID},
		}.encode(),
		acl{
			{aclUserObj, 6, aclUndefinedID},
			{aclGroupObj, 4, aclUndefinedID},
			{aclMask, 0, aclUndefinedID},
			{aclOther, 4, aclUndefinedID},
		}.encode(),
		nil,
		{2, 0, 0, 0},
		{1, 0, 0, 0},
		{2, 0, 0, 0, 1, 0, 7, 0},
	}
	return seeds
}

// aclProbes returns the uids and gids worth asking about: the owner's, every
// named id of a, the granted gid, and a few unrelated ones.
func aclProbes(a acl, ownerUID, ownerGID, gid uint32) (uids, gids []uint32) {
	uids = []uint32{ownerUID, 0, 4242, aclUndefinedID}
	gids = []uint32{ownerGID, gid, 0, 4343, aclUndefinedID}
	for _, e := range a {
		switch e.Tag {
		case aclUser:
			uids = append(uids, e.ID)
		case aclGroup:
			gids = append(gids, e.ID)
		}
	}
	return uids, gids
}

func FuzzParseACL(f *testing.F) {
	for _, s := range fuzzACLSeeds() {
		f.Add(s, uint32(1000), uint32(1000), uint32(2000), uint16(aclRWX))
		f.Add(s, uint32(0), uint32(0), uint32(0), uint16(aclRead|aclExecute))
	}
	f.Fuzz(func(t *testing.T, b []byte, ownerUID, ownerGID, gid uint32, perm uint16) {
		a, err := parseACL(b)
		if err != nil {
			if a != nil {
				t.Fatalf("parseACL(%x) = %v with error %v", b, a, err)
			}
			return
		}
		// Decoding then encoding gives back the attribute byte for byte.
		if got := a.encode(); !slices.Equal(got, b) {
			t.Fatalf("parseACL(%x) = %v, which encodes as %x", b, a, got)
		}
		if len(a) < 3 || len(a) != (len(b)-aclHeaderLen)/aclEntryLen {
			t.Fatalf("parseACL(%x) = %d entries", b, len(a))
		}
		if err := a.valid(); err != nil {
			t.Fatalf("parseACL(%x) = %v, which is not valid: %v", b, a, err)
		}
		// What parseACL accepts is already in canonical order.
		sorted := slices.Clone(a)
		sortACL(sorted)
		if !slices.Equal(sorted, a) {
			t.Fatalf("parseACL(%x) = %v, not in canonical order (%v)", b, a, sorted)
		}
		if len(a) > 64 {
			return // the checks below are quadratic
		}

		perm &= aclRWX
		if gid == aclUndefinedID {
			gid = 4444 // not a gid: no named entry may carry it
		}
		uids, gids := aclProbes(a, ownerUID, ownerGID, gid)
		// sameAccess fails unless b gives every probed process whose gid is
		// not except exactly the access a gives it.
		sameAccess := func(what string, x, y acl, except uint32) {
			t.Helper()
			for _, u := range uids {
				for _, g := range gids {
					if g == except {
						continue
					}
					for want := uint16(0); want <= aclRWX; want++ {
						if x.allows(ownerUID, ownerGID, u, g, want) != y.allows(ownerUID, ownerGID, u, g, want) {
							t.Fatalf("%s: uid %d gid %d, want %o: %v allows %v, %v allows %v (owner %d:%d)",
								what, u, g, want, x, x.allows(ownerUID, ownerGID, u, g, want), y, y.allows(ownerUID, ownerGID, u, g, want), ownerUID, ownerGID)
						}
					}
				}
			}
		}
		checkValid := func(what string, x acl) {
			t.Helper()
			if err := x.valid(); err != nil {
				t.Fatalf("%s = %v: invalid: %v", what, x, err)
			}
			back, err := parseACL(x.encode())
			if err != nil || !slices.Equal(back, x) {
				t.Fatalf("%s = %v: parse(encode) = %v, %v", what, x, back, err)
			}
		}

		before := slices.Clone(a)
		g, changed := a.withGroupGrant(gid, perm)
		if !slices.Equal(a, before) {
			t.Fatalf("withGroupGrant changed its receiver: %v, was %v", a, before)
		}
		checkValid("withGroupGrant", g)
		if !changed && !slices.Equal(g, a) {
			t.Fatalf("withGroupGrant(%d, %o) on %v = %v but reports no change", gid, perm, a, g)
		}
		sameAccess("withGroupGrant", a, g, gid)
		// A process of the group that is neither the owner nor a named
		// user now has perm.
		named := map[uint32]bool{}
		for _, e := range g {
			if e.Tag == aclUser {
				named[e.ID] = true
			}
		}
		for _, u := range uids {
			if u != ownerUID && !named[u] && !g.allows(ownerUID, ownerGID, u, gid, perm) {
				t.Fatalf("withGroupGrant(%d, %o) on %v = %v: uid %d gid %d lacks %o", gid, perm, a, g, u, gid, perm)
			}
		}
		if again, ch := g.withGroupGrant(gid, perm); ch || !slices.Equal(again, g) {
			t.Fatalf("withGroupGrant(%d, %o) is not idempotent: %v then %v (changed %v)", gid, perm, g, again, ch)
		}

		for _, src := range []acl{a, g} {
			r, removed := src.withoutGroup(gid)
			checkValid("withoutGroup", r)
			had := slices.ContainsFunc(src, func(e aclEntry) bool { return e.Tag == aclGroup && e.ID == gid })
			if removed != had || slices.ContainsFunc(r, func(e aclEntry) bool { return e.Tag == aclGroup && e.ID == gid }) {
				t.Fatalf("withoutGroup(%d) on %v = %v, %v", gid, src, r, removed)
			}
			sameAccess("withoutGroup", src, r, gid)
		}
		// Granting and then taking back leaves everyone else as they were.
		back, _ := g.withoutGroup(gid)
		sameAccess("grant then withoutGroup", a, back, gid)
	})
}

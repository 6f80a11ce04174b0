package dirgrant

import (
	"encoding/hex"
	"slices"
	"testing"
)

func TestACLEncodeParse(t *testing.T) {
	a := ACL{
		{TagUserObj, 7, UndefinedID},
		{TagUser, 5, 1000},
		{TagGroupObj, 5, UndefinedID},
		{TagGroup, 7, 2000},
		{TagMask, 7, UndefinedID},
		{TagOther, 0, UndefinedID},
	}
	raw := a.Encode()
	want := "02000000" + "01000700ffffffff" + "02000500e8030000" + "04000500ffffffff" +
		"08000700d0070000" + "10000700ffffffff" + "20000000ffffffff"
	if got := hex.EncodeToString(raw); got != want {
		t.Fatalf("encode = %s, want %s", got, want)
	}
	back, err := ParseACL(raw)
	if err != nil || !slices.Equal(back, a) {
		t.Fatalf("parse(encode) = %v, %v", back, err)
	}
	for name, bad := range map[string]ACL{
		"no mask with named entry": {{TagUserObj, 7, UndefinedID}, {TagGroupObj, 5, UndefinedID}, {TagGroup, 7, 1}, {TagOther, 0, UndefinedID}},
		"out of order":             {{TagGroupObj, 5, UndefinedID}, {TagUserObj, 7, UndefinedID}, {TagOther, 0, UndefinedID}},
		"duplicate named":          {{TagUserObj, 7, UndefinedID}, {TagGroupObj, 5, UndefinedID}, {TagGroup, 7, 1}, {TagGroup, 5, 1}, {TagMask, 7, UndefinedID}, {TagOther, 0, UndefinedID}},
		"bad perm":                 {{TagUserObj, 8, UndefinedID}, {TagGroupObj, 5, UndefinedID}, {TagOther, 0, UndefinedID}},
		"no other":                 {{TagUserObj, 7, UndefinedID}, {TagGroupObj, 5, UndefinedID}},
	} {
		if _, err := ParseACL(bad.Encode()); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
	if _, err := ParseACL([]byte{1, 0, 0, 0}); err == nil {
		t.Error("version 1 parsed")
	}
	if _, err := ParseACL(raw[:9]); err == nil {
		t.Error("truncated attribute parsed")
	}
}

func TestACLGroupGrant(t *testing.T) {
	const gid = 4242
	// A directory without an ACL, mode 0750: the grant adds the group and a
	// mask; the owning group keeps r-x.
	got, changed := FromMode(0o750).WithGroupGrant(gid, PermRWX)
	want := ACL{{TagUserObj, 7, UndefinedID}, {TagGroupObj, 5, UndefinedID}, {TagGroup, 7, gid}, {TagMask, 7, UndefinedID}, {TagOther, 0, UndefinedID}}
	if !changed || !slices.Equal(got, want) || got.Valid() != nil {
		t.Errorf("grant on 0750 = %v %v, want %v", got, changed, want)
	}
	// An ACL whose mask held a named user and the owning group back: they
	// keep exactly what the old mask let them have.
	masked := ACL{{TagUserObj, 7, UndefinedID}, {TagUser, 7, 1000}, {TagGroupObj, 7, UndefinedID}, {TagGroup, 6, 3000}, {TagMask, 5, UndefinedID}, {TagOther, 1, UndefinedID}}
	got, changed = masked.WithGroupGrant(gid, PermRWX)
	want = ACL{{TagUserObj, 7, UndefinedID}, {TagUser, 5, 1000}, {TagGroupObj, 5, UndefinedID}, {TagGroup, 4, 3000}, {TagGroup, 7, gid}, {TagMask, 7, UndefinedID}, {TagOther, 1, UndefinedID}}
	if !changed || !slices.Equal(got, want) || got.Valid() != nil {
		t.Errorf("grant on a masked ACL = %v, want %v", got, want)
	}
	for _, who := range []struct{ uid, gid uint32 }{{1000, 1}, {2, 3000}, {5, 6}} {
		for perm := uint16(1); perm <= 7; perm++ {
			if masked.Allows(0, 0, who.uid, who.gid, perm) != got.Allows(0, 0, who.uid, who.gid, perm) {
				t.Errorf("uid %d gid %d perm %o: access changed by the grant", who.uid, who.gid, perm)
			}
		}
	}
	// Already granted: nothing to do. Removing it leaves the rest.
	if _, changed := got.WithGroupGrant(gid, PermRWX); changed {
		t.Error("second grant changed the ACL")
	}
	rm, removed := got.WithoutGroup(gid)
	if !removed || slices.ContainsFunc(rm, func(e Entry) bool { return e.Tag == TagGroup && e.ID == gid }) || rm.Valid() != nil {
		t.Errorf("withoutGroup = %v %v", rm, removed)
	}
}

func TestACLAllows(t *testing.T) {
	a := ACL{{TagUserObj, 7, UndefinedID}, {TagUser, 6, 10}, {TagGroupObj, 5, UndefinedID}, {TagGroup, 7, 20}, {TagMask, 5, UndefinedID}, {TagOther, 1, UndefinedID}}
	for _, c := range []struct {
		uid, gid uint32
		want     uint16
		ok       bool
	}{
		{1, 99, PermRWX, true},                  // the owner
		{10, 99, PermRead, true},                // named user, masked to r--
		{10, 99, PermWrite, false},              // masked
		{11, 2, PermRead | PermExecute, true},   // owning group
		{11, 20, PermWrite, false},              // named group rwx, masked
		{11, 20, PermRead | PermExecute, true},  // named group
		{11, 21, PermExecute, true},             // other
		{11, 21, PermRead, false},               // other
		{11, 2, PermWrite | PermExecute, false}, // group matched: no fall back to other
		{10, 2, PermRead | PermExecute, false},  // named user decides before groups
		{1, 2, PermWrite | PermRead | PermExecute, true},
	} {
		if got := a.Allows(1, 2, c.uid, c.gid, c.want); got != c.ok {
			t.Errorf("uid %d gid %d want %o: %v", c.uid, c.gid, c.want, got)
		}
	}
}

// fuzzACLSeeds are attribute values: valid ACLs of several shapes and a few
// broken ones.
func fuzzACLSeeds() [][]byte {
	seeds := [][]byte{
		FromMode(0o750).Encode(),
		FromMode(0o777).Encode(),
		ACL{
			{TagUserObj, 7, UndefinedID},
			{TagUser, 5, 1000},
			{TagGroupObj, 5, UndefinedID},
			{TagGroup, 7, 2000},
			{TagGroup, 1, 2001},
			{TagMask, 5, UndefinedID},
			{TagOther, 0, UndefinedID},
		}.Encode(),
		ACL{
			{TagUserObj, 6, UndefinedID},
			{TagGroupObj, 4, UndefinedID},
			{TagMask, 0, UndefinedID},
			{TagOther, 4, UndefinedID},
		}.Encode(),
		nil,
		{2, 0, 0, 0},
		{1, 0, 0, 0},
		{2, 0, 0, 0, 1, 0, 7, 0},
	}
	return seeds
}

// aclProbes returns the uids and gids worth asking about: the owner's, every
// named id of a, the granted gid, and a few unrelated ones.
func aclProbes(a ACL, ownerUID, ownerGID, gid uint32) (uids, gids []uint32) {
	uids = []uint32{ownerUID, 0, 4242, UndefinedID}
	gids = []uint32{ownerGID, gid, 0, 4343, UndefinedID}
	for _, e := range a {
		switch e.Tag {
		case TagUser:
			uids = append(uids, e.ID)
		case TagGroup:
			gids = append(gids, e.ID)
		}
	}
	return uids, gids
}

func FuzzParseACL(f *testing.F) {
	for _, s := range fuzzACLSeeds() {
		f.Add(s, uint32(1000), uint32(1000), uint32(2000), uint16(PermRWX))
		f.Add(s, uint32(0), uint32(0), uint32(0), uint16(PermRead|PermExecute))
	}
	f.Fuzz(func(t *testing.T, b []byte, ownerUID, ownerGID, gid uint32, perm uint16) {
		a, err := ParseACL(b)
		if err != nil {
			if a != nil {
				t.Fatalf("ParseACL(%x) = %v with error %v", b, a, err)
			}
			return
		}
		// Decoding then encoding gives back the attribute byte for byte.
		if got := a.Encode(); !slices.Equal(got, b) {
			t.Fatalf("ParseACL(%x) = %v, which encodes as %x", b, a, got)
		}
		if len(a) < 3 || len(a) != (len(b)-HeaderLen)/EntryLen {
			t.Fatalf("ParseACL(%x) = %d entries", b, len(a))
		}
		if err := a.Valid(); err != nil {
			t.Fatalf("ParseACL(%x) = %v, which is not valid: %v", b, a, err)
		}
		// What ParseACL accepts is already in canonical order.
		sorted := slices.Clone(a)
		SortACL(sorted)
		if !slices.Equal(sorted, a) {
			t.Fatalf("ParseACL(%x) = %v, not in canonical order (%v)", b, a, sorted)
		}
		if len(a) > 64 {
			return // the checks below are quadratic
		}

		perm &= PermRWX
		if gid == UndefinedID {
			gid = 4444 // not a gid: no named entry may carry it
		}
		uids, gids := aclProbes(a, ownerUID, ownerGID, gid)
		// sameAccess fails unless b gives every probed process whose gid is
		// not except exactly the access a gives it.
		sameAccess := func(what string, x, y ACL, except uint32) {
			t.Helper()
			for _, u := range uids {
				for _, g := range gids {
					if g == except {
						continue
					}
					for want := uint16(0); want <= PermRWX; want++ {
						if x.Allows(ownerUID, ownerGID, u, g, want) != y.Allows(ownerUID, ownerGID, u, g, want) {
							t.Fatalf("%s: uid %d gid %d, want %o: %v allows %v, %v allows %v (owner %d:%d)",
								what, u, g, want, x, x.Allows(ownerUID, ownerGID, u, g, want), y, y.Allows(ownerUID, ownerGID, u, g, want), ownerUID, ownerGID)
						}
					}
				}
			}
		}
		checkValid := func(what string, x ACL) {
			t.Helper()
			if err := x.Valid(); err != nil {
				t.Fatalf("%s = %v: invalid: %v", what, x, err)
			}
			back, err := ParseACL(x.Encode())
			if err != nil || !slices.Equal(back, x) {
				t.Fatalf("%s = %v: parse(encode) = %v, %v", what, x, back, err)
			}
		}

		before := slices.Clone(a)
		g, changed := a.WithGroupGrant(gid, perm)
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
			if e.Tag == TagUser {
				named[e.ID] = true
			}
		}
		for _, u := range uids {
			if u != ownerUID && !named[u] && !g.Allows(ownerUID, ownerGID, u, gid, perm) {
				t.Fatalf("withGroupGrant(%d, %o) on %v = %v: uid %d gid %d lacks %o", gid, perm, a, g, u, gid, perm)
			}
		}
		if again, ch := g.WithGroupGrant(gid, perm); ch || !slices.Equal(again, g) {
			t.Fatalf("withGroupGrant(%d, %o) is not idempotent: %v then %v (changed %v)", gid, perm, g, again, ch)
		}

		for _, src := range []ACL{a, g} {
			r, removed := src.WithoutGroup(gid)
			checkValid("withoutGroup", r)
			had := slices.ContainsFunc(src, func(e Entry) bool { return e.Tag == TagGroup && e.ID == gid })
			if removed != had || slices.ContainsFunc(r, func(e Entry) bool { return e.Tag == TagGroup && e.ID == gid }) {
				t.Fatalf("withoutGroup(%d) on %v = %v, %v", gid, src, r, removed)
			}
			sameAccess("withoutGroup", src, r, gid)
		}
		// Granting and then taking back leaves everyone else as they were.
		back, _ := g.WithoutGroup(gid)
		sameAccess("grant then withoutGroup", a, back, gid)
	})
}

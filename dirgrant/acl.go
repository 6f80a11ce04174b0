package dirgrant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// This file is the codec of POSIX access control lists as the kernel
// stores them in the system.posix_acl_access extended attribute
// (include/uapi/linux/posix_acl_xattr.h, include/uapi/linux/posix_acl.h):
// a little-endian header {u32 version = 2} followed by entries
// {u16 tag, u16 perm, u32 id}, sorted by tag and then by id. It is pure,
// and built and tested on every platform.

// XattrName is the name of the access ACL attribute.
const XattrName = "system.posix_acl_access"

// The attribute's layout.
const (
	xattrVersion = 2
	// HeaderLen and EntryLen are the sizes of the header and of one entry.
	HeaderLen = 4
	EntryLen  = 8
	// UndefinedID is the ID of entries that name nobody (all but TagUser
	// and TagGroup).
	UndefinedID = 0xffffffff
)

// ACL entry tags.
const (
	TagUserObj  = 0x01
	TagUser     = 0x02
	TagGroupObj = 0x04
	TagGroup    = 0x08
	TagMask     = 0x10
	TagOther    = 0x20
)

// ACL permission bits.
const (
	PermExecute = 1
	PermWrite   = 2
	PermRead    = 4
	PermRWX     = PermRead | PermWrite | PermExecute
)

// Entry is one entry of an access ACL. ID is a uid (TagUser), a gid
// (TagGroup) or UndefinedID.
type Entry struct {
	Tag  uint16
	Perm uint16
	ID   uint32
}

// ACL is an access ACL in the kernel's canonical order.
type ACL []Entry

// ParseACL decodes the value of system.posix_acl_access and checks that it
// is a valid, canonical access ACL.
func ParseACL(b []byte) (ACL, error) {
	if len(b) < HeaderLen || (len(b)-HeaderLen)%EntryLen != 0 {
		return nil, fmt.Errorf("malformed ACL attribute (%d bytes)", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != xattrVersion {
		return nil, fmt.Errorf("unsupported ACL attribute version %d", v)
	}
	var a ACL
	for off := HeaderLen; off < len(b); off += EntryLen {
		a = append(a, Entry{
			Tag:  binary.LittleEndian.Uint16(b[off:]),
			Perm: binary.LittleEndian.Uint16(b[off+2:]),
			ID:   binary.LittleEndian.Uint32(b[off+4:]),
		})
	}
	if err := a.Valid(); err != nil {
		return nil, err
	}
	return a, nil
}

// Encode returns the attribute value of a.
func (a ACL) Encode() []byte {
	b := make([]byte, HeaderLen+EntryLen*len(a))
	binary.LittleEndian.PutUint32(b, xattrVersion)
	for i, e := range a {
		off := HeaderLen + i*EntryLen
		binary.LittleEndian.PutUint16(b[off:], e.Tag)
		binary.LittleEndian.PutUint16(b[off+2:], e.Perm)
		binary.LittleEndian.PutUint32(b[off+4:], e.ID)
	}
	return b
}

// Valid applies the kernel's rules (fs/posix_acl.c, posix_acl_valid): one
// each of user_obj, group_obj and other; named entries in ascending id
// order without duplicates; a mask exactly when there are named entries.
func (a ACL) Valid() error {
	var userObj, groupObj, other, mask, named int
	lastTag := uint16(0)
	lastID := int64(-1)
	for _, e := range a {
		if e.Perm&^PermRWX != 0 {
			return fmt.Errorf("ACL entry with invalid permissions %#o", e.Perm)
		}
		if e.Tag < lastTag {
			return errors.New("ACL entries out of order")
		}
		if e.Tag != lastTag {
			lastID = -1
		}
		lastTag = e.Tag
		switch e.Tag {
		case TagUserObj:
			userObj++
		case TagGroupObj:
			groupObj++
		case TagOther:
			other++
		case TagMask:
			mask++
		case TagUser, TagGroup:
			if e.ID == UndefinedID || int64(e.ID) <= lastID {
				return errors.New("ACL named entries out of order or duplicated")
			}
			lastID = int64(e.ID)
			named++
		default:
			return fmt.Errorf("unknown ACL entry tag %#x", e.Tag)
		}
	}
	if userObj != 1 || groupObj != 1 || other != 1 || mask > 1 || (named > 0 && mask == 0) {
		return errors.New("ACL lacks a required entry or has too many")
	}
	return nil
}

// FromMode returns the minimal ACL equivalent to the permission bits of
// mode (what a file without an ACL attribute has).
func FromMode(mode uint32) ACL {
	return ACL{
		{Tag: TagUserObj, Perm: uint16(mode>>6) & PermRWX, ID: UndefinedID},
		{Tag: TagGroupObj, Perm: uint16(mode>>3) & PermRWX, ID: UndefinedID},
		{Tag: TagOther, Perm: uint16(mode) & PermRWX, ID: UndefinedID},
	}
}

// SortACL puts a in the kernel's canonical order.
func SortACL(a ACL) {
	slices.SortStableFunc(a, func(x, y Entry) int {
		if x.Tag != y.Tag {
			return int(x.Tag) - int(y.Tag)
		}
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
}

// maskPerm returns the mask of a, or rwx when it has none (then the group
// class is not masked).
func (a ACL) maskPerm() uint16 {
	for _, e := range a {
		if e.Tag == TagMask {
			return e.Perm
		}
	}
	return PermRWX
}

// Allows reports whether a process with fsuid uid, fsgid gid and no
// supplementary groups may do want (a set of permission bits) to a file
// owned by ownerUID:ownerGID whose access ACL is a, following the kernel
// (fs/posix_acl.c, posix_acl_permission). It ignores capabilities and
// security modules.
func (a ACL) Allows(ownerUID, ownerGID, uid, gid uint32, want uint16) bool {
	mask := a.maskPerm()
	for _, e := range a {
		switch e.Tag {
		case TagUserObj:
			if uid == ownerUID {
				return e.Perm&want == want
			}
		case TagUser:
			if e.ID == uid {
				return e.Perm&mask&want == want
			}
		}
	}
	found := false
	for _, e := range a {
		if e.Tag == TagGroupObj && gid == ownerGID || e.Tag == TagGroup && e.ID == gid {
			if e.Perm&mask&want == want {
				return true
			}
			found = true
		}
	}
	if found {
		return false
	}
	for _, e := range a {
		if e.Tag == TagOther {
			return e.Perm&want == want
		}
	}
	return false
}

// WithGroupGrant returns a copy of a that gives group gid the permissions
// perm, and whether that changes anything. Everyone else keeps exactly the
// access they had: when the mask must widen to let perm through, the other
// group-class entries (named users, the owning group, named groups) are
// reduced to what the old mask let them have.
func (a ACL) WithGroupGrant(gid uint32, perm uint16) (ACL, bool) {
	oldMask := a.maskPerm()
	for _, e := range a {
		if e.Tag == TagGroup && e.ID == gid && e.Perm&oldMask&perm == perm {
			return slices.Clone(a), false
		}
	}
	out := make(ACL, 0, len(a)+2)
	newMask := perm
	for _, e := range a {
		switch e.Tag {
		case TagMask:
			continue
		case TagGroup:
			if e.ID == gid {
				continue
			}
			fallthrough
		case TagUser, TagGroupObj:
			e.Perm &= oldMask
			newMask |= e.Perm
		}
		out = append(out, e)
	}
	out = append(out,
		Entry{Tag: TagGroup, Perm: perm, ID: gid},
		Entry{Tag: TagMask, Perm: newMask, ID: UndefinedID})
	SortACL(out)
	return out, true
}

// WithoutGroup returns a copy of a without a named entry for gid (the mask
// and every other entry are kept).
func (a ACL) WithoutGroup(gid uint32) (ACL, bool) {
	out := make(ACL, 0, len(a))
	removed := false
	for _, e := range a {
		if e.Tag == TagGroup && e.ID == gid {
			removed = true
			continue
		}
		out = append(out, e)
	}
	return out, removed
}

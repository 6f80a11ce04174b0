//go:build linux

package sandbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// POSIX access control lists as the kernel stores them in the
// system.posix_acl_access extended attribute
// (include/uapi/linux/posix_acl_xattr.h, include/uapi/linux/posix_acl.h):
// a little-endian header {u32 version = 2} followed by entries
// {u16 tag, u16 perm, u32 id}, sorted by tag and then by id.

// aclXattr is the name of the access ACL attribute.
const aclXattr = "system.posix_acl_access"

const (
	aclXattrVersion = 2
	aclHeaderLen    = 4
	aclEntryLen     = 8
	aclUndefinedID  = 0xffffffff
)

// ACL entry tags.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// ACL permission bits.
const (
	aclExecute = 1
	aclWrite   = 2
	aclRead    = 4
	aclRWX     = aclRead | aclWrite | aclExecute
)

// aclEntry is one entry of an access ACL. ID is a uid (aclUser), a gid
// (aclGroup) or aclUndefinedID.
type aclEntry struct {
	Tag  uint16
	Perm uint16
	ID   uint32
}

// acl is an access ACL in the kernel's canonical order.
type acl []aclEntry

// parseACL decodes the value of system.posix_acl_access and checks that it
// is a valid, canonical access ACL.
func parseACL(b []byte) (acl, error) {
	if len(b) < aclHeaderLen || (len(b)-aclHeaderLen)%aclEntryLen != 0 {
		return nil, fmt.Errorf("malformed ACL attribute (%d bytes)", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != aclXattrVersion {
		return nil, fmt.Errorf("unsupported ACL attribute version %d", v)
	}
	var a acl
	for off := aclHeaderLen; off < len(b); off += aclEntryLen {
		a = append(a, aclEntry{
			Tag:  binary.LittleEndian.Uint16(b[off:]),
			Perm: binary.LittleEndian.Uint16(b[off+2:]),
			ID:   binary.LittleEndian.Uint32(b[off+4:]),
		})
	}
	if err := a.valid(); err != nil {
		return nil, err
	}
	return a, nil
}

// encode returns the attribute value of a.
func (a acl) encode() []byte {
	b := make([]byte, aclHeaderLen+aclEntryLen*len(a))
	binary.LittleEndian.PutUint32(b, aclXattrVersion)
	for i, e := range a {
		off := aclHeaderLen + i*aclEntryLen
		binary.LittleEndian.PutUint16(b[off:], e.Tag)
		binary.LittleEndian.PutUint16(b[off+2:], e.Perm)
		binary.LittleEndian.PutUint32(b[off+4:], e.ID)
	}
	return b
}

// valid applies the kernel's rules (fs/posix_acl.c, posix_acl_valid): one
// each of user_obj, group_obj and other; named entries in ascending id
// order without duplicates; a mask exactly when there are named entries.
func (a acl) valid() error {
	var userObj, groupObj, other, mask, named int
	lastTag := uint16(0)
	lastID := int64(-1)
	for _, e := range a {
		if e.Perm&^aclRWX != 0 {
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
		case aclUserObj:
			userObj++
		case aclGroupObj:
			groupObj++
		case aclOther:
			other++
		case aclMask:
			mask++
		case aclUser, aclGroup:
			if e.ID == aclUndefinedID || int64(e.ID) <= lastID {
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

// aclFromMode returns the minimal ACL equivalent to the permission bits of
// mode (what a file without an ACL attribute has).
func aclFromMode(mode uint32) acl {
	return acl{
		{Tag: aclUserObj, Perm: uint16(mode>>6) & aclRWX, ID: aclUndefinedID},
		{Tag: aclGroupObj, Perm: uint16(mode>>3) & aclRWX, ID: aclUndefinedID},
		{Tag: aclOther, Perm: uint16(mode) & aclRWX, ID: aclUndefinedID},
	}
}

// sortACL puts a in the kernel's canonical order.
func sortACL(a acl) {
	slices.SortStableFunc(a, func(x, y aclEntry) int {
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
func (a acl) maskPerm() uint16 {
	for _, e := range a {
		if e.Tag == aclMask {
			return e.Perm
		}
	}
	return aclRWX
}

// allows reports whether a process with fsuid uid, fsgid gid and no
// supplementary groups may do want (a set of permission bits) to a file
// owned by ownerUID:ownerGID whose access ACL is a, following the kernel
// (fs/posix_acl.c, posix_acl_permission). It ignores capabilities and
// security modules.
func (a acl) allows(ownerUID, ownerGID, uid, gid uint32, want uint16) bool {
	mask := a.maskPerm()
	for _, e := range a {
		switch e.Tag {
		case aclUserObj:
			if uid == ownerUID {
				return e.Perm&want == want
			}
		case aclUser:
			if e.ID == uid {
				return e.Perm&mask&want == want
			}
		}
	}
	found := false
	for _, e := range a {
		if e.Tag == aclGroupObj && gid == ownerGID || e.Tag == aclGroup && e.ID == gid {
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
		if e.Tag == aclOther {
			return e.Perm&want == want
		}
	}
	return false
}

// withGroupGrant returns a copy of a that gives group gid the permissions
// perm, and whether that changes anything. Everyone else keeps exactly the
// access they had: when the mask must widen to let perm through, the other
// group-class entries (named users, the owning group, named groups) are
// reduced to what the old mask let them have.
func (a acl) withGroupGrant(gid uint32, perm uint16) (acl, bool) {
	oldMask := a.maskPerm()
	for _, e := range a {
		if e.Tag == aclGroup && e.ID == gid && e.Perm&oldMask&perm == perm {
			return slices.Clone(a), false
		}
	}
	out := make(acl, 0, len(a)+2)
	newMask := perm
	for _, e := range a {
		switch e.Tag {
		case aclMask:
			continue
		case aclGroup:
			if e.ID == gid {
				continue
			}
			fallthrough
		case aclUser, aclGroupObj:
			e.Perm &= oldMask
			newMask |= e.Perm
		}
		out = append(out, e)
	}
	out = append(out,
		aclEntry{Tag: aclGroup, Perm: perm, ID: gid},
		aclEntry{Tag: aclMask, Perm: newMask, ID: aclUndefinedID})
	sortACL(out)
	return out, true
}

// withoutGroup returns a copy of a without a named entry for gid (the mask
// and every other entry are kept).
func (a acl) withoutGroup(gid uint32) (acl, bool) {
	out := make(acl, 0, len(a))
	removed := false
	for _, e := range a {
		if e.Tag == aclGroup && e.ID == gid {
			removed = true
			continue
		}
		out = append(out, e)
	}
	return out, removed
}

// getACL returns the raw access ACL attribute of the open file fd, nil when
// it has none.
func getACL(fd int) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Fgetxattr(fd, aclXattr, buf)
		switch {
		case errors.Is(err, unix.ENODATA):
			return nil, nil
		case errors.Is(err, unix.ERANGE) && size < 1<<20:
			continue
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
}

// currentACL returns fd's access ACL: the stored one, or the one its mode
// bits amount to.
func currentACL(fd int, st *unix.Stat_t) (acl, []byte, error) {
	raw, err := getACL(fd)
	if err != nil {
		return nil, nil, err
	}
	if raw == nil {
		return aclFromMode(st.Mode), nil, nil
	}
	a, err := parseACL(raw)
	if err != nil {
		return nil, nil, err
	}
	return a, raw, nil
}

// sameBytes reports whether two attribute values are equal (nil == empty).
func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) }

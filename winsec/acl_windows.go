//go:build windows

package winsec

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// dirGrantInherit is the inheritance of the working-directory grant:
// files and subdirectories (the OICI of DirGrantSDDLACE).
const dirGrantInherit = windows.OBJECT_INHERIT_ACE | windows.CONTAINER_INHERIT_ACE

// explicitGrant looks for an explicit (not inherited) allow entry for sid
// in dir's DACL and returns its mask and flags.
func explicitGrant(dacl *windows.ACL, sid *windows.SID) (mask uint32, flags uint8, found bool, err error) {
	if dacl == nil {
		return 0, 0, false, nil
	}
	for i := uint32(0); i < uint32(dacl.AceCount); i++ {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			return 0, 0, false, fmt.Errorf("reading entry %d: %w", i, err)
		}
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE || ace.Header.AceFlags&windows.INHERITED_ACE != 0 {
			continue
		}
		aceSID := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		if aceSID.Equals(sid) {
			return uint32(ace.Mask), ace.Header.AceFlags, true, nil
		}
	}
	return 0, 0, false, nil
}

// GrantDir gives the sandbox group groupSID modify rights on dir,
// inherited by its files and subdirectories (SetNamedSecurityInfo
// propagates the entry through the existing tree), unless dir already
// has an explicit entry for the group carrying at least those rights with
// that inheritance. It reports whether it added the entry, which is
// exactly when RevokeDir should remove it after the run. An existing
// explicit entry for the group with fewer rights is an error, because
// revoking ours afterwards would remove it too.
func GrantDir(dir, groupSID string) (added bool, err error) {
	sid, err := windows.StringToSid(groupSID)
	if err != nil {
		return false, fmt.Errorf("granting the sandbox group access to %s: %w", dir, err)
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return false, fmt.Errorf("reading the permissions of %s: %w", dir, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return false, fmt.Errorf("reading the permissions of %s: %w", dir, err)
	}
	mask, flags, found, err := explicitGrant(dacl, sid)
	if err != nil {
		return false, fmt.Errorf("reading the permissions of %s: %w", dir, err)
	}
	if found {
		if mask&RightFileModify == RightFileModify && flags&dirGrantInherit == dirGrantInherit {
			return false, nil
		}
		return false, fmt.Errorf("%s already has a narrower permission entry for the sandbox group (%#x); remove it or widen it to modify (OICI)", dir, mask)
	}
	acl, err := windows.ACLFromEntries([]windows.EXPLICIT_ACCESS{{
		AccessPermissions: windows.ACCESS_MASK(RightFileModify),
		AccessMode:        windows.GRANT_ACCESS,
		Inheritance:       windows.SUB_CONTAINERS_AND_OBJECTS_INHERIT,
		Trustee: windows.TRUSTEE{
			TrusteeForm:  windows.TRUSTEE_IS_SID,
			TrusteeType:  windows.TRUSTEE_IS_GROUP,
			TrusteeValue: windows.TrusteeValueFromSID(sid),
		},
	}}, dacl)
	if err != nil {
		return false, fmt.Errorf("building the permissions of %s: %w", dir, err)
	}
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, daclInfo(sd), nil, nil, acl, nil); err != nil {
		return false, fmt.Errorf("granting the sandbox group access to %s (you must be able to change its permissions): %w", dir, err)
	}
	return true, nil
}

// RevokeDir removes the sandbox group's explicit entries from dir's DACL
// (and, through inheritance, from the tree below). Call it only when
// GrantDir reported that it added the entry.
func RevokeDir(dir, groupSID string) error {
	sid, err := windows.StringToSid(groupSID)
	if err != nil {
		return fmt.Errorf("revoking the sandbox group's access to %s: %w", dir, err)
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("reading the permissions of %s: %w", dir, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("reading the permissions of %s: %w", dir, err)
	}
	acl, err := windows.ACLFromEntries([]windows.EXPLICIT_ACCESS{{
		AccessMode: windows.REVOKE_ACCESS,
		Trustee: windows.TRUSTEE{
			TrusteeForm:  windows.TRUSTEE_IS_SID,
			TrusteeType:  windows.TRUSTEE_IS_GROUP,
			TrusteeValue: windows.TrusteeValueFromSID(sid),
		},
	}}, dacl)
	if err != nil {
		return fmt.Errorf("building the permissions of %s: %w", dir, err)
	}
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, daclInfo(sd), nil, nil, acl, nil); err != nil {
		return fmt.Errorf("revoking the sandbox group's access to %s: %w", dir, err)
	}
	return nil
}

// daclInfo returns the SECURITY_INFORMATION for writing a DACL back with
// the protection (inheritance from the parent on or off) it had in sd, so
// that adding or removing an entry changes nothing else.
func daclInfo(sd *windows.SECURITY_DESCRIPTOR) windows.SECURITY_INFORMATION {
	info := windows.SECURITY_INFORMATION(windows.DACL_SECURITY_INFORMATION)
	if ctl, _, err := sd.Control(); err == nil && ctl&windows.SE_DACL_PROTECTED != 0 {
		return info | windows.PROTECTED_DACL_SECURITY_INFORMATION
	}
	return info | windows.UNPROTECTED_DACL_SECURITY_INFORMATION
}

//go:build windows

package accounts

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// Local accounts through netapi32 (NetUserAdd and friends), which
// golang.org/x/sys/windows does not wrap.
var (
	modNetapi32                 = windows.NewLazySystemDLL("netapi32.dll")
	procNetUserAdd              = modNetapi32.NewProc("NetUserAdd")
	procNetUserSetInfo          = modNetapi32.NewProc("NetUserSetInfo")
	procNetUserDel              = modNetapi32.NewProc("NetUserDel")
	procNetLocalGroupAdd        = modNetapi32.NewProc("NetLocalGroupAdd")
	procNetLocalGroupDel        = modNetapi32.NewProc("NetLocalGroupDel")
	procNetLocalGroupAddMembers = modNetapi32.NewProc("NetLocalGroupAddMembers")

	modUserenv        = windows.NewLazySystemDLL("userenv.dll")
	procDeleteProfile = modUserenv.NewProc("DeleteProfileW")
)

// NET_API_STATUS values (lmerr.h, winerror.h) that are not failures here.
const (
	nerrGroupNotFound  = 2220
	nerrUserNotFound   = 2221
	nerrGroupExists    = 2223
	nerrUserExists     = 2224
	errorAliasExists   = 1379
	errorMemberInAlias = 1378
	errorNoSuchAlias   = 1376
)

// USER_INFO_1 flags and privilege level.
const (
	ufScript            = 0x0001
	ufPasswdCantChange  = 0x0040
	ufNormalAccount     = 0x0200
	ufDontExpirePasswd  = 0x10000
	userPrivUser        = 1
	sandboxAccountFlags = ufScript | ufPasswdCantChange | ufNormalAccount | ufDontExpirePasswd
)

type userInfo1 struct {
	name        *uint16
	password    *uint16
	passwordAge uint32
	priv        uint32
	homeDir     *uint16
	comment     *uint16
	flags       uint32
	scriptPath  *uint16
}

type userInfo1003 struct{ password *uint16 }

type userInfo1008 struct{ flags uint32 }

type localGroupInfo1 struct {
	name    *uint16
	comment *uint16
}

type localGroupMembersInfo0 struct{ sid *windows.SID }

// netErr turns a NET_API_STATUS into an error naming the call.
func netErr(call string, status uintptr) error {
	if status == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", call, windows.Errno(status))
}

// EnsureUser creates the local user name with password, or, when it
// exists, adopts it: its password is reset to password and its flags to a
// sandbox account's (password never expires, cannot be changed by the
// user). It returns the user's SID.
func EnsureUser(name, password, comment string) (sid string, created bool, err error) {
	n, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return "", false, err
	}
	p, err := windows.UTF16PtrFromString(password)
	if err != nil {
		return "", false, err
	}
	c, err := windows.UTF16PtrFromString(comment)
	if err != nil {
		return "", false, err
	}
	info := userInfo1{name: n, password: p, priv: userPrivUser, comment: c, flags: sandboxAccountFlags}
	var parmErr uint32
	r, _, _ := procNetUserAdd.Call(0, 1, uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&parmErr)))
	switch r {
	case 0:
		created = true
	case nerrUserExists:
		pw := userInfo1003{password: p}
		r, _, _ = procNetUserSetInfo.Call(0, uintptr(unsafe.Pointer(n)), 1003, uintptr(unsafe.Pointer(&pw)), uintptr(unsafe.Pointer(&parmErr)))
		if err := netErr("setting the password of "+name, r); err != nil {
			return "", false, err
		}
		fl := userInfo1008{flags: sandboxAccountFlags}
		r, _, _ = procNetUserSetInfo.Call(0, uintptr(unsafe.Pointer(n)), 1008, uintptr(unsafe.Pointer(&fl)), uintptr(unsafe.Pointer(&parmErr)))
		if err := netErr("setting the account flags of "+name, r); err != nil {
			return "", false, err
		}
	default:
		return "", false, netErr("creating local user "+name, r)
	}
	sid, err = LookupUser(name)
	return sid, created, err
}

// EnsureGroup creates the local group name, or adopts it when it exists,
// and returns its SID.
func EnsureGroup(name, comment string) (string, error) {
	n, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return "", err
	}
	c, err := windows.UTF16PtrFromString(comment)
	if err != nil {
		return "", err
	}
	info := localGroupInfo1{name: n, comment: c}
	var parmErr uint32
	r, _, _ := procNetLocalGroupAdd.Call(0, 1, uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&parmErr)))
	if r != 0 && r != nerrGroupExists && r != errorAliasExists {
		return "", netErr("creating local group "+name, r)
	}
	return LookupGroup(name)
}

// AddToGroup makes the account with SID member a member of the local
// group; being one already is fine.
func AddToGroup(group, member string) error {
	g, err := windows.UTF16PtrFromString(group)
	if err != nil {
		return err
	}
	s, err := windows.StringToSid(member)
	if err != nil {
		return fmt.Errorf("adding %s to %s: %w", member, group, err)
	}
	m := localGroupMembersInfo0{sid: s}
	r, _, _ := procNetLocalGroupAddMembers.Call(0, uintptr(unsafe.Pointer(g)), 0, uintptr(unsafe.Pointer(&m)), 1)
	if r != 0 && r != errorMemberInAlias {
		return netErr("adding "+member+" to local group "+group, r)
	}
	return nil
}

// LookupUser returns the SID of the local user name.
func LookupUser(name string) (sid string, err error) { return lookupLocal(name, windows.SidTypeUser) }

// LookupGroup returns the SID of the local group name.
func LookupGroup(name string) (sid string, err error) { return lookupLocal(name, windows.SidTypeAlias) }

// lookupLocal returns the SID of the account name on this computer (never
// a domain account of the same name), requiring it to be of the given
// type (windows.SidTypeUser for users, windows.SidTypeAlias for local
// groups).
func lookupLocal(name string, want uint32) (string, error) {
	host, err := windows.ComputerName()
	if err != nil {
		return "", fmt.Errorf("looking up %s: %w", name, err)
	}
	sid, domain, typ, err := windows.LookupSID("", host+`\`+name)
	if err != nil {
		return "", fmt.Errorf("looking up local account %s: %w", name, err)
	}
	if !strings.EqualFold(domain, host) {
		return "", fmt.Errorf("account %s was found in %s, not on this computer (%s)", name, domain, host)
	}
	if typ != want {
		return "", fmt.Errorf("local account %s has SID type %d, want %d", name, typ, want)
	}
	return sid.String(), nil
}

// RemoveUser deletes the local user name and its profile (directory and
// registry hive); a user that does not exist is not an error.
func RemoveUser(name string) error {
	if sid, err := LookupUser(name); err == nil {
		s, _ := windows.UTF16PtrFromString(sid)
		if r, _, e := procDeleteProfile.Call(uintptr(unsafe.Pointer(s)), 0, 0); r == 0 {
			if !errors.Is(e, windows.ERROR_FILE_NOT_FOUND) && !errors.Is(e, windows.ERROR_PATH_NOT_FOUND) {
				return fmt.Errorf("deleting the profile of %s: %w", name, e)
			}
		}
	}
	n, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return err
	}
	r, _, _ := procNetUserDel.Call(0, uintptr(unsafe.Pointer(n)))
	if r != 0 && r != nerrUserNotFound {
		return netErr("deleting local user "+name, r)
	}
	return nil
}

// RemoveGroup deletes the local group name; a group that does not exist
// is not an error.
func RemoveGroup(name string) error {
	n, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return err
	}
	r, _, _ := procNetLocalGroupDel.Call(0, uintptr(unsafe.Pointer(n)))
	if r != 0 && r != nerrGroupNotFound && r != errorNoSuchAlias {
		return netErr("deleting local group "+name, r)
	}
	return nil
}

// userListKey is where Winlogon reads the accounts it does not show on the
// logon screen (value name = user name, DWORD 0 = hidden).
const userListKey = `SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\SpecialAccounts\UserList`

// HideFromLogon hides the user from the logon screen and checks that the
// value reads back.
func HideFromLogon(name string) error {
	k, _, err := registry.CreateKey(registry.LOCAL_MACHINE, userListKey, registry.SET_VALUE|registry.QUERY_VALUE)
	if err != nil {
		return fmt.Errorf("hiding %s from the logon screen: %w", name, err)
	}
	defer k.Close()
	if err := k.SetDWordValue(name, 0); err != nil {
		return fmt.Errorf("hiding %s from the logon screen: %w", name, err)
	}
	v, _, err := k.GetIntegerValue(name)
	if err != nil {
		return fmt.Errorf("hiding %s from the logon screen: reading the value back: %w", name, err)
	}
	if v != 0 {
		return fmt.Errorf("hiding %s from the logon screen: value reads back as %d", name, v)
	}
	return nil
}

// IsHiddenFromLogon reports whether the user is hidden from the logon
// screen.
func IsHiddenFromLogon(name string) bool {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, userListKey, registry.QUERY_VALUE)
	if err != nil {
		return false
	}
	defer k.Close()
	v, _, err := k.GetIntegerValue(name)
	return err == nil && v == 0
}

// UnhideFromLogon removes the user's logon-screen value; a missing value
// is not an error.
func UnhideFromLogon(name string) error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, userListKey, registry.SET_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing %s from the hidden accounts: %w", name, err)
	}
	defer k.Close()
	if err := k.DeleteValue(name); err != nil && !errors.Is(err, registry.ErrNotExist) {
		return fmt.Errorf("removing %s from the hidden accounts: %w", name, err)
	}
	return nil
}

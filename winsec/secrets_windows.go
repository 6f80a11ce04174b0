//go:build windows

package winsec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Secrets are the sandbox users' passwords.
type Secrets struct {
	OfflinePassword string `json:"offline_password"`
	OnlinePassword  string `json:"online_password"`
}

// dpapiEntropy ties the protected blob to sandgate: another program
// running as the same user cannot decrypt it without knowing this too.
var dpapiEntropy = []byte("sandgate sandbox user passwords v1")

// Protect encrypts data with DPAPI for the current user
// (CryptProtectData, no UI): only this user, on this machine, can decrypt
// it.
func Protect(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, errors.New("dpapi: nothing to protect")
	}
	in := windows.DataBlob{Size: uint32(len(data)), Data: &data[0]}
	ent := windows.DataBlob{Size: uint32(len(dpapiEntropy)), Data: &dpapiEntropy[0]}
	desc, _ := windows.UTF16PtrFromString("sandgate")
	var out windows.DataBlob
	if err := windows.CryptProtectData(&in, desc, &ent, 0, nil, windows.CRYPTPROTECT_UI_FORBIDDEN, &out); err != nil {
		return nil, fmt.Errorf("dpapi: protecting: %w", err)
	}
	defer windows.LocalFree(windows.Handle(unsafe.Pointer(out.Data)))
	return append([]byte(nil), unsafe.Slice(out.Data, out.Size)...), nil
}

// Unprotect decrypts a blob made by Protect.
func Unprotect(blob []byte) ([]byte, error) {
	if len(blob) == 0 {
		return nil, errors.New("dpapi: empty blob")
	}
	in := windows.DataBlob{Size: uint32(len(blob)), Data: &blob[0]}
	ent := windows.DataBlob{Size: uint32(len(dpapiEntropy)), Data: &dpapiEntropy[0]}
	var out windows.DataBlob
	if err := windows.CryptUnprotectData(&in, nil, &ent, 0, nil, windows.CRYPTPROTECT_UI_FORBIDDEN, &out); err != nil {
		return nil, fmt.Errorf("dpapi: %w", err)
	}
	defer windows.LocalFree(windows.Handle(unsafe.Pointer(out.Data)))
	return append([]byte(nil), unsafe.Slice(out.Data, out.Size)...), nil
}

// WriteSecrets protects s with DPAPI for the current user and writes it to
// path, created with SecretsFileSDDL's descriptor (only the current user
// and SYSTEM may open it) from the first byte on: a temporary file with
// that descriptor is written and flushed, then renamed over path.
func WriteSecrets(path string, s Secrets) error {
	owner, err := CurrentUserSID()
	if err != nil {
		return err
	}
	sddl, err := SecretsFileSDDL(owner)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	blob, err := Protect(raw)
	if err != nil {
		return err
	}
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return fmt.Errorf("secrets file descriptor: %w", err)
	}
	sa := &windows.SecurityAttributes{Length: uint32(unsafe.Sizeof(windows.SecurityAttributes{})), SecurityDescriptor: sd}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	tmp16, err := windows.UTF16PtrFromString(tmp)
	if err != nil {
		return err
	}
	h, err := windows.CreateFile(tmp16, windows.GENERIC_WRITE, 0, sa, windows.CREATE_ALWAYS,
		windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_WRITE_THROUGH, 0)
	if err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	f := os.NewFile(uintptr(h), tmp)
	_, werr := f.Write(blob)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	// CREATE_ALWAYS on an existing file keeps that file's descriptor: set
	// ours explicitly before the file takes the real name.
	if err := SetSDDL(tmp, sddl, true); err != nil {
		os.Remove(tmp)
		return err
	}
	to16, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return err
	}
	if err := windows.MoveFileEx(tmp16, to16, windows.MOVEFILE_REPLACE_EXISTING|windows.MOVEFILE_WRITE_THROUGH); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}

// ErrSecretsOtherUser is wrapped by ReadSecrets when the file exists but
// this account cannot open or decrypt it: setup ran as another account.
var ErrSecretsOtherUser = errors.New("the sandbox users' passwords were stored by another account")

// ReadSecrets reads and decrypts the file WriteSecrets wrote.
func ReadSecrets(path string) (Secrets, error) {
	blob, err := os.ReadFile(path)
	if errors.Is(err, os.ErrPermission) {
		return Secrets{}, fmt.Errorf("%w (cannot open %s): run `sandgate setup` as the account that runs sandgate", ErrSecretsOtherUser, path)
	}
	if err != nil {
		return Secrets{}, fmt.Errorf("reading the sandbox users' passwords: %w", err)
	}
	raw, err := Unprotect(blob)
	if err != nil {
		return Secrets{}, fmt.Errorf("%w (%s cannot be decrypted by this account: %v): run `sandgate setup` as the account that runs sandgate", ErrSecretsOtherUser, path, err)
	}
	var s Secrets
	if err := json.Unmarshal(raw, &s); err != nil || s.OfflinePassword == "" || s.OnlinePassword == "" {
		return Secrets{}, fmt.Errorf("the sandbox users' password file %s is corrupt; run `sandgate setup` again", path)
	}
	return s, nil
}

// SetSDDL replaces the owner (when the descriptor has one) and the DACL of
// the file or directory path with those of sddl; protected says the DACL
// takes nothing from the parent.
func SetSDDL(path, sddl string, protected bool) error {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return fmt.Errorf("descriptor for %s: %w", path, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("descriptor for %s: %w", path, err)
	}
	info := windows.SECURITY_INFORMATION(windows.DACL_SECURITY_INFORMATION)
	if protected {
		info |= windows.PROTECTED_DACL_SECURITY_INFORMATION
	}
	var owner *windows.SID
	if o, _, err := sd.Owner(); err == nil && o != nil {
		owner = o
		info |= windows.OWNER_SECURITY_INFORMATION
	}
	if err := windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, info, owner, nil, dacl, nil); err != nil {
		return fmt.Errorf("setting the permissions of %s: %w", path, err)
	}
	return nil
}

// EnsureStateDir makes dir (sandgate's directory under ProgramData) a real
// directory owned by Administrators with StateDirSDDL's protected DACL. An
// existing dir that is a reparse point (junction, symbolic link), or not
// owned by SYSTEM or Administrators, is refused: standard users can create
// directories in ProgramData, and an elevated setup must not write through
// one they prepared.
func EnsureStateDir(dir string) error {
	d16, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return err
	}
	attrs, err := windows.GetFileAttributes(d16)
	switch {
	case errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_PATH_NOT_FOUND):
		sd, err := windows.SecurityDescriptorFromString("O:" + SIDAdministrators + StateDirSDDL)
		if err != nil {
			return fmt.Errorf("state directory descriptor: %w", err)
		}
		sa := &windows.SecurityAttributes{Length: uint32(unsafe.Sizeof(windows.SecurityAttributes{})), SecurityDescriptor: sd}
		if err := windows.CreateDirectory(d16, sa); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("checking %s: %w", dir, err)
	}
	if attrs&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 || attrs&windows.FILE_ATTRIBUTE_DIRECTORY == 0 {
		return fmt.Errorf("%s exists but is not a plain directory (a link or a file); remove it and run setup again", dir)
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("reading the owner of %s: %w", dir, err)
	}
	owner, _, err := sd.Owner()
	if err != nil || owner == nil {
		return fmt.Errorf("reading the owner of %s: %v", dir, err)
	}
	if o := owner.String(); o != SIDAdministrators && o != SIDSystem {
		return fmt.Errorf("%s exists and is owned by %s, not by Administrators or SYSTEM; it was not made by sandgate setup: remove it and run setup again", dir, o)
	}
	return SetSDDL(dir, "O:"+SIDAdministrators+StateDirSDDL, true)
}

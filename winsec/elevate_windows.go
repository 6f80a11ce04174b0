//go:build windows

package winsec

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	modShell32          = windows.NewLazySystemDLL("shell32.dll")
	procShellExecuteExW = modShell32.NewProc("ShellExecuteExW")
)

// shellExecuteInfo is SHELLEXECUTEINFOW.
type shellExecuteInfo struct {
	cbSize       uint32
	fMask        uint32
	hwnd         windows.Handle
	lpVerb       *uint16
	lpFile       *uint16
	lpParameters *uint16
	lpDirectory  *uint16
	nShow        int32
	hInstApp     windows.Handle
	lpIDList     uintptr
	lpClass      *uint16
	hkeyClass    windows.Handle
	dwHotKey     uint32
	hIconMonitor windows.Handle
	hProcess     windows.Handle
}

const (
	seeMaskNoCloseProcess = 0x00000040
	seeMaskNoAsync        = 0x00000100
	seeMaskFlagNoUI       = 0x00000400
	swHide                = 0
)

// ErrElevationCancelled is returned by RunElevated when the user declined
// the administrator prompt (ERROR_CANCELLED).
var ErrElevationCancelled = errors.New("the administrator (UAC) prompt was cancelled, so nothing was changed")

// IsElevated reports whether this process runs with an elevated
// administrator token.
func IsElevated() bool { return windows.GetCurrentProcessToken().IsElevated() }

// RunElevated starts exe with args through ShellExecuteEx with the "runas"
// verb, which shows the administrator (UAC) prompt, hides the new
// process's console window, waits for the process and returns its exit
// code. A declined prompt is ErrElevationCancelled.
func RunElevated(exe string, args []string, dir string) (uint32, error) {
	verb, _ := windows.UTF16PtrFromString("runas")
	file, err := windows.UTF16PtrFromString(exe)
	if err != nil {
		return 0, err
	}
	params, err := windows.UTF16PtrFromString(ComposeCommandLine(args))
	if err != nil {
		return 0, err
	}
	var d *uint16
	if dir != "" {
		if d, err = windows.UTF16PtrFromString(dir); err != nil {
			return 0, err
		}
	}
	info := shellExecuteInfo{
		fMask:        seeMaskNoCloseProcess | seeMaskNoAsync | seeMaskFlagNoUI,
		lpVerb:       verb,
		lpFile:       file,
		lpParameters: params,
		lpDirectory:  d,
		nShow:        swHide,
	}
	info.cbSize = uint32(unsafe.Sizeof(info))
	r, _, e := procShellExecuteExW.Call(uintptr(unsafe.Pointer(&info)))
	if r == 0 {
		if errors.Is(e, windows.ERROR_CANCELLED) {
			return 0, ErrElevationCancelled
		}
		return 0, fmt.Errorf("starting %s elevated: %w", exe, e)
	}
	if info.hProcess == 0 {
		return 0, fmt.Errorf("starting %s elevated: no process handle", exe)
	}
	defer windows.CloseHandle(info.hProcess)
	if _, err := windows.WaitForSingleObject(info.hProcess, windows.INFINITE); err != nil {
		return 0, fmt.Errorf("waiting for the elevated %s: %w", exe, err)
	}
	var code uint32
	if err := windows.GetExitCodeProcess(info.hProcess, &code); err != nil {
		return 0, fmt.Errorf("reading the exit code of the elevated %s: %w", exe, err)
	}
	return code, nil
}

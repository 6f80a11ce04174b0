//go:build windows

package winsec

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	modAdvapi32                 = windows.NewLazySystemDLL("advapi32.dll")
	procCreateProcessWithLogonW = modAdvapi32.NewProc("CreateProcessWithLogonW")
	procCreateRestrictedToken   = modAdvapi32.NewProc("CreateRestrictedToken")
)

const (
	logonWithProfile    = 0x00000001 // LOGON_WITH_PROFILE
	disableMaxPrivilege = 0x1        // DISABLE_MAX_PRIVILEGE
	startfUseShowWindow = 0x00000001
	startfUseStdHandles = 0x00000100
)

// AsUser says how to start a process as a sandbox user.
type AsUser struct {
	User, Password string
	Exe            string   // absolute path of the program
	Args           []string // argv, Args[0] included
	Env            []string // the whole environment, Windows form
	Dir            string   // working directory ("" = the caller's)
	// Stdin, Stdout and Stderr are handles the new process gets as its
	// standard handles (pipe ends the caller made).
	Stdin, Stdout, Stderr windows.Handle
}

// UserProcess is a process started by StartAsUser, inside a job object of
// its own.
type UserProcess struct {
	Process windows.Handle
	Job     windows.Handle
	PID     uint32
}

// StartAsUser starts a.Exe as a.User with CreateProcessWithLogonW: an
// interactive logon of the local account, with its profile loaded, on the
// caller's window station and desktop, in a new (hidden) console, with
// the given standard handles. The process is created suspended, put in a
// new job object that kills every process in it when the job's last
// handle closes (so nothing of the sandbox outlives sandgate), restricts
// its use of the desktop (no handles of other processes' windows, no
// clipboard, no global atoms, no system settings, no logoff) and allows
// no breakaway; only then is it resumed. Close releases the handles and
// so ends the job.
func StartAsUser(a AsUser) (*UserProcess, error) {
	user, err := windows.UTF16PtrFromString(a.User)
	if err != nil {
		return nil, err
	}
	domain, _ := windows.UTF16PtrFromString(".")
	pw, err := windows.UTF16PtrFromString(a.Password)
	if err != nil {
		return nil, err
	}
	exe, err := windows.UTF16PtrFromString(a.Exe)
	if err != nil {
		return nil, err
	}
	cmdline, err := windows.UTF16FromString(ComposeCommandLine(a.Args))
	if err != nil {
		return nil, err
	}
	block, err := EnvBlock(a.Env)
	if err != nil {
		return nil, err
	}
	var dir *uint16
	if a.Dir != "" {
		if dir, err = windows.UTF16PtrFromString(a.Dir); err != nil {
			return nil, err
		}
	}
	job, err := newSandboxJob()
	if err != nil {
		return nil, err
	}
	si := windows.StartupInfo{
		Flags:      startfUseStdHandles | startfUseShowWindow,
		ShowWindow: swHide,
		StdInput:   a.Stdin,
		StdOutput:  a.Stdout,
		StdErr:     a.Stderr,
	}
	si.Cb = uint32(unsafe.Sizeof(si))
	var pi windows.ProcessInformation
	flags := uint32(windows.CREATE_UNICODE_ENVIRONMENT | windows.CREATE_SUSPENDED | windows.CREATE_NEW_CONSOLE)
	r, _, e := procCreateProcessWithLogonW.Call(
		uintptr(unsafe.Pointer(user)), uintptr(unsafe.Pointer(domain)), uintptr(unsafe.Pointer(pw)),
		logonWithProfile,
		uintptr(unsafe.Pointer(exe)), uintptr(unsafe.Pointer(&cmdline[0])),
		uintptr(flags), uintptr(unsafe.Pointer(&block[0])), uintptr(unsafe.Pointer(dir)),
		uintptr(unsafe.Pointer(&si)), uintptr(unsafe.Pointer(&pi)))
	if r == 0 {
		windows.CloseHandle(job)
		switch {
		case errors.Is(e, windows.ERROR_LOGON_FAILURE):
			return nil, fmt.Errorf("logging on as %s failed (wrong password: run `sandgate setup` again): %w", a.User, e)
		case errors.Is(e, windows.ERROR_ACCOUNT_DISABLED), errors.Is(e, windows.ERROR_ACCOUNT_RESTRICTION), errors.Is(e, windows.ERROR_LOGON_TYPE_NOT_GRANTED):
			return nil, fmt.Errorf("logging on as %s is not allowed on this machine (account disabled or logon right denied by policy): %w", a.User, e)
		}
		return nil, fmt.Errorf("starting %s as %s: %w", a.Exe, a.User, e)
	}
	defer windows.CloseHandle(pi.Thread)
	if err := windows.AssignProcessToJobObject(job, pi.Process); err != nil {
		windows.TerminateProcess(pi.Process, 125)
		windows.CloseHandle(pi.Process)
		windows.CloseHandle(job)
		return nil, fmt.Errorf("putting the sandbox process in its job object: %w", err)
	}
	if _, err := windows.ResumeThread(pi.Thread); err != nil {
		windows.TerminateJobObject(job, 125)
		windows.CloseHandle(pi.Process)
		windows.CloseHandle(job)
		return nil, fmt.Errorf("resuming the sandbox process: %w", err)
	}
	return &UserProcess{Process: pi.Process, Job: job, PID: pi.ProcessId}, nil
}

// newSandboxJob creates the job object described at StartAsUser.
func newSandboxJob() (windows.Handle, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, fmt.Errorf("creating a job object: %w", err)
	}
	ext := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	ext.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | windows.JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&ext)), uint32(unsafe.Sizeof(ext))); err != nil {
		windows.CloseHandle(job)
		return 0, fmt.Errorf("setting the job object's limits: %w", err)
	}
	ui := windows.JOBOBJECT_BASIC_UI_RESTRICTIONS{UIRestrictionsClass: windows.JOB_OBJECT_UILIMIT_HANDLES |
		windows.JOB_OBJECT_UILIMIT_READCLIPBOARD | windows.JOB_OBJECT_UILIMIT_WRITECLIPBOARD |
		windows.JOB_OBJECT_UILIMIT_SYSTEMPARAMETERS | windows.JOB_OBJECT_UILIMIT_DISPLAYSETTINGS |
		windows.JOB_OBJECT_UILIMIT_GLOBALATOMS | windows.JOB_OBJECT_UILIMIT_DESKTOP | windows.JOB_OBJECT_UILIMIT_EXITWINDOWS}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectBasicUIRestrictions,
		uintptr(unsafe.Pointer(&ui)), uint32(unsafe.Sizeof(ui))); err != nil {
		windows.CloseHandle(job)
		return 0, fmt.Errorf("setting the job object's UI restrictions: %w", err)
	}
	return job, nil
}

// Wait waits for the process to exit and returns its exit code.
func (p *UserProcess) Wait() (uint32, error) {
	if _, err := windows.WaitForSingleObject(p.Process, windows.INFINITE); err != nil {
		return 0, fmt.Errorf("waiting for the sandbox process: %w", err)
	}
	var code uint32
	if err := windows.GetExitCodeProcess(p.Process, &code); err != nil {
		return 0, fmt.Errorf("reading the sandbox process's exit code: %w", err)
	}
	return code, nil
}

// Kill ends every process of the job with exit code code.
func (p *UserProcess) Kill(code uint32) error {
	return windows.TerminateJobObject(p.Job, code)
}

// Close closes the handles; closing the job kills whatever is left in it.
func (p *UserProcess) Close() {
	windows.CloseHandle(p.Process)
	windows.CloseHandle(p.Job)
}

// RestrictedSelfToken returns a primary token for the sandboxed command,
// derived from this process's own token with CreateRestrictedToken:
//   - DISABLE_MAX_PRIVILEGE: every privilege removed except
//     SeChangeNotifyPrivilege (bypass traverse checking, which lets the
//     command reach its working directory through parents it cannot list);
//   - the groups DenyOnlyGroups picks become deny-only (they can deny but
//     never grant access);
//   - no restricting SIDs, and the token user untouched: Windows Firewall
//     matches the offline user's rules by an access check of the rule's
//     user condition against the token, and a restricting-SID list without
//     that user would make the check fail, so the block rules would not
//     apply. Keeping the user and adding no restricting SIDs keeps the
//     rules in force.
//
// A restricted token derived from the caller's own may be assigned to a
// child process without SeAssignPrimaryTokenPrivilege.
func RestrictedSelfToken(sandboxGroupSID string) (windows.Token, error) {
	var tok windows.Token
	if err := windows.OpenProcessToken(windows.CurrentProcess(),
		windows.TOKEN_DUPLICATE|windows.TOKEN_QUERY|windows.TOKEN_ASSIGN_PRIMARY, &tok); err != nil {
		return 0, fmt.Errorf("opening this process's token: %w", err)
	}
	defer tok.Close()
	tg, err := tok.GetTokenGroups()
	if err != nil {
		return 0, fmt.Errorf("reading this process's groups: %w", err)
	}
	var groups []TokenGroup
	bySID := map[string]*windows.SID{}
	for _, g := range tg.AllGroups() {
		s := g.Sid.String()
		groups = append(groups, TokenGroup{SID: s, Attributes: g.Attributes})
		bySID[s] = g.Sid
	}
	deny := DenyOnlyGroups(groups, sandboxGroupSID)
	var disable []windows.SIDAndAttributes
	for _, s := range deny {
		if sid, ok := bySID[s]; ok {
			disable = append(disable, windows.SIDAndAttributes{Sid: sid})
		}
	}
	var disablePtr uintptr
	if len(disable) > 0 {
		disablePtr = uintptr(unsafe.Pointer(&disable[0]))
	}
	var restricted windows.Token
	r, _, e := procCreateRestrictedToken.Call(uintptr(tok), disableMaxPrivilege,
		uintptr(len(disable)), disablePtr, 0, 0, 0, 0, uintptr(unsafe.Pointer(&restricted)))
	if r == 0 {
		return 0, fmt.Errorf("creating the command's restricted token: %w", e)
	}
	// Check what the firewall will see: the same token user as ours.
	want, err1 := tok.GetTokenUser()
	got, err2 := restricted.GetTokenUser()
	if err1 != nil || err2 != nil || !want.User.Sid.Equals(got.User.Sid) {
		restricted.Close()
		return 0, errors.New("the restricted token's user differs from the sandbox user's; refusing to start the command")
	}
	return restricted, nil
}

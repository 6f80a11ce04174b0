//go:build windows

package winsec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"unicode/utf16"
	"unsafe"

	"golang.org/x/sys/windows"
)

// LauncherMain is the launcher: sandgate itself, started by StartAsUser as
// the sandbox user with LaunchArg and the LaunchEnv request. It removes
// LaunchEnv from its environment, makes RestrictedSelfToken, starts the
// command with that token (CreateProcessAsUser through os/exec) on its own
// standard handles, in its own working directory and environment (which
// the caller prepared, with the per-user variables such as USERPROFILE and
// TEMP replaced by the sandbox user's own, see UserProfileVars), waits for it and returns its exit code: the
// command's own; 127 when it is not found, 126 when it cannot be
// executed, 125 when the launcher itself fails. The command inherits the
// launcher's job object, so it cannot outlive sandgate.
func LauncherMain() int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "sandgate: "+format+"\n", args...)
		return code
	}
	l, err := DecodeLaunch(os.Getenv(LaunchEnv))
	if err != nil {
		return fail(125, "launcher: %v", err)
	}
	if err := os.Unsetenv(LaunchEnv); err != nil {
		return fail(125, "launcher: %v", err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(strings.ToUpper(kv), LaunchEnv+"=") {
			env = append(env, kv)
		}
	}
	profile, err := ownProfileEnv()
	if err != nil {
		return fail(125, "launcher: %v", err)
	}
	env = UserProfileVars(env, profile)
	tok, err := RestrictedSelfToken(l.SandboxGroupID)
	if err != nil {
		return fail(125, "launcher: %v", err)
	}
	defer tok.Close()
	path, err := exec.LookPath(l.Args[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return fail(127, "%s: command not found", l.Args[0])
		}
		return fail(126, "%s: %v", l.Args[0], err)
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        l.Args,
		Env:         env,
		Dir:         l.Dir,
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Token: syscall.Token(tok)},
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_BAD_EXE_FORMAT) {
			return fail(126, "%s: cannot execute: %v", l.Args[0], err)
		}
		if errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_PATH_NOT_FOUND) {
			return fail(127, "%s: %v", l.Args[0], err)
		}
		return fail(125, "starting %s: %v", l.Args[0], err)
	}
	err = cmd.Wait()
	if cmd.ProcessState != nil {
		return cmd.ProcessState.ExitCode()
	}
	return fail(125, "waiting for %s: %v", l.Args[0], err)
}

// ownProfileEnv returns the default environment of this process's user
// (CreateEnvironmentBlock, without inheriting ours): its profile
// directories and temporary directory.
func ownProfileEnv() ([]string, error) {
	var block *uint16
	if err := windows.CreateEnvironmentBlock(&block, windows.GetCurrentProcessToken(), false); err != nil {
		return nil, fmt.Errorf("reading the sandbox user's profile environment: %w", err)
	}
	defer windows.DestroyEnvironmentBlock(block)
	var out []string
	var cur []uint16
	for p := unsafe.Pointer(block); ; p = unsafe.Add(p, 2) {
		c := *(*uint16)(p)
		if c != 0 {
			cur = append(cur, c)
			continue
		}
		if len(cur) == 0 {
			break
		}
		out = append(out, string(utf16.Decode(cur)))
		cur = cur[:0]
	}
	return out, nil
}

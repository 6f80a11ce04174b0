//go:build linux

package fsview

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of the test binary when it runs as a child.
const (
	childEnv  = "FSVIEW_TEST_CHILD"  // "apply" or "check"
	planEnv   = "FSVIEW_TEST_PLAN"   // the plan (Marshal, base64)
	checksEnv = "FSVIEW_TEST_CHECKS" // the checks (JSON)
	runAsEnv  = "FSVIEW_TEST_RUNAS"  // "UID:GID" the checker runs as (identity shape)
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "apply":
		os.Exit(childApply())
	case "check":
		os.Exit(childCheck())
	}
	os.Exit(m.Run())
}

// childApply applies the plan, reports how long that took on stderr
// ("apply-ns N"), then, as a command would be started, locks the thread
// down (no capabilities, no_new_privs, the Landlock ruleset) and executes
// the test binary again as the checker.
func childApply() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "child: "+format+"\n", args...)
		return 3
	}
	raw, err := base64.StdEncoding.DecodeString(os.Getenv(planEnv))
	if err != nil {
		return fail("plan: %v", err)
	}
	p, err := UnmarshalPlan(raw)
	if err != nil {
		return fail("plan: %v", err)
	}
	runtime.LockOSThread()
	start := time.Now()
	if err := Apply(p); err != nil {
		return fail("Apply: %v", err)
	}
	ll, err := NewLandlock(p)
	if err != nil {
		return fail("NewLandlock: %v", err)
	}
	fmt.Fprintf(os.Stderr, "apply-ns %d\n", time.Since(start).Nanoseconds())
	exe, err := os.Executable()
	if err != nil {
		return fail("executable: %v", err)
	}
	if err := dropPrivileges(os.Getenv(runAsEnv)); err != nil {
		return fail("dropping privileges: %v", err)
	}
	if err := ll.RestrictSelf(); err != nil {
		return fail("%v", err)
	}
	err = syscall.Exec(exe, []string{"fsview-check"}, setEnv(os.Environ(), childEnv, "check"))
	return fail("exec %s: %v", exe, err)
}

// dropPrivileges leaves the calling thread without capabilities across
// exec, as a sandboxed command: as runAs ("UID:GID") when given, else with
// the secure bits that keep uid 0 from regaining them.
func dropPrivileges(runAs string) error {
	if runAs != "" {
		var uid, gid int
		if _, err := fmt.Sscanf(runAs, "%d:%d", &uid, &gid); err != nil {
			return err
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			return e
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
			return e
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			return e
		}
	} else if unix.Getuid() == 0 {
		const noroot, norootLocked = 1 << 0, 1 << 1
		if err := unix.Prctl(unix.PR_SET_SECUREBITS, noroot|norootLocked, 0, 0, 0); err != nil {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return err
	}
	return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
}

// setEnv returns env with KEY=value in place of any KEY=.
func setEnv(env []string, key, value string) []string {
	out := []string{key + "=" + value}
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// check is one thing the checker tries.
type check struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	Arg  string `json:"arg,omitempty"`
}

// result is what a check gave: "ok" or the errno's name, and data read.
type result struct {
	check
	Result string `json:"result"`
	Data   string `json:"data,omitempty"`
}

// childCheck runs the checks as the sandboxed command and prints one JSON
// result per line.
func childCheck() int {
	var checks []check
	if err := json.Unmarshal([]byte(os.Getenv(checksEnv)), &checks); err != nil {
		fmt.Fprintln(os.Stderr, "checker:", err)
		return 3
	}
	in := bufio.NewReader(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for _, c := range checks {
		data, err := runCheck(c, in)
		res := result{check: c, Result: "ok", Data: data}
		if err != nil {
			res.Result = errName(err)
		}
		enc.Encode(res)
	}
	return 0
}

func runCheck(c check, in *bufio.Reader) (string, error) {
	p := c.Path
	switch c.Op {
	case "read":
		b, err := os.ReadFile(p)
		return string(b), err
	case "list":
		ents, err := os.ReadDir(p)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		return strings.Join(names, ","), err
	case "open-write": // opens for writing, writes nothing
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			f.Close()
		}
		return "", err
	case "append", "write", "create":
		flags := map[string]int{"append": os.O_WRONLY | os.O_APPEND, "write": os.O_WRONLY | os.O_TRUNC, "create": os.O_WRONLY | os.O_CREATE | os.O_EXCL}[c.Op]
		f, err := os.OpenFile(p, flags, 0o644)
		if err != nil {
			return "", err
		}
		_, err = f.WriteString(c.Arg)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return "", err
	case "mkdir":
		return "", os.Mkdir(p, 0o755)
	case "unlink":
		return "", unix.Unlink(p)
	case "rmdir":
		return "", unix.Rmdir(p)
	case "rename-over": // rename Arg onto Path
		return "", unix.Rename(c.Arg, p)
	case "rename-away": // rename Path to Arg
		return "", unix.Rename(p, c.Arg)
	case "chmod":
		return "", unix.Chmod(p, 0o777)
	case "truncate":
		return "", unix.Truncate(p, 0)
	case "symlink":
		return "", unix.Symlink(c.Arg, p)
	case "pause": // says "ready", waits for a line
		fmt.Println(`{"op":"pause","result":"ready"}`)
		_, err := in.ReadString('\n')
		return "", err
	}
	return "", fmt.Errorf("unknown check %q", c.Op)
}

// errName is the errno's name (ENOENT, EROFS, ...) or the error's text.
func errName(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		if n := unix.ErrnoName(en); n != "" {
			return n
		}
	}
	return err.Error()
}

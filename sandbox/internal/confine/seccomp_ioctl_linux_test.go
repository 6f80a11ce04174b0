//go:build linux && (amd64 || arm64)

package confine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlChildEnv makes the test binary the child of TestSeccompRefusesTIOCSTI.
const ioctlChildEnv = "SANDGATE_CONFINE_IOCTL_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(ioctlChildEnv) == "1" {
		os.Exit(ioctlChild())
	}
	os.Exit(m.Run())
}

// ioctlChild runs in a session of its own: it opens a new pty as its
// controlling terminal (a pty CMD holds), injects one byte with TIOCSTI
// before the filter (the baseline: the kernel lets a process type into its
// own controlling terminal), installs the sandbox's filter on this thread,
// and tries the terminal ioctls again. It prints one "name result" line each.
func ioctlChild() int {
	runtime.LockOSThread() // the filter is this thread's; never unlocked
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("setup open /dev/ptmx:", err)
		return 3
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		fmt.Println("setup unlockpt:", err)
		return 3
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		fmt.Println("setup ptsname:", err)
		return 3
	}
	// Without O_NOCTTY: a session leader with no terminal takes this one.
	slave, err := unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("setup open slave:", err)
		return 3
	}
	report := func(name string, err error) {
		if err == nil {
			fmt.Println(name, "ok")
			return
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			fmt.Println(name, "errno", int(errno))
			return
		}
		fmt.Println(name, "error", err)
	}
	sti := func(fd int, req uint64) error {
		c := byte('x')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&c)))
		if e != 0 {
			return e
		}
		return nil
	}
	report("before-tiocsti", sti(slave, unix.TIOCSTI))

	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("setup no_new_privs:", err)
		return 3
	}
	if _, err := installFilter(unixRefused); err != nil {
		fmt.Println("setup filter:", err)
		return 3
	}
	report("tiocsti", sti(slave, unix.TIOCSTI))
	report("tiocsti-master", sti(master, unix.TIOCSTI))
	// The kernel takes the request as an unsigned int: a set high half
	// still means TIOCSTI, and must still be refused.
	report("tiocsti-high-bits", sti(slave, 1<<32|uint64(unix.TIOCSTI)))
	report("tioclinux", sti(slave, unix.TIOCLINUX))
	// What programs do on their own pty still works.
	tio, err := unix.IoctlGetTermios(slave, unix.TCGETS)
	report("tcgets", err)
	if err == nil {
		tio.Lflag &^= unix.ECHO
		report("tcsets", unix.IoctlSetTermios(slave, unix.TCSETS, tio))
	}
	report("tiocswinsz", unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 97}))
	ws, err := unix.IoctlGetWinsize(slave, unix.TIOCGWINSZ)
	if err == nil && (ws.Row != 33 || ws.Col != 97) {
		err = fmt.Errorf("size %dx%d, want 33x97", ws.Row, ws.Col)
	}
	report("tiocgwinsz", err)
	_, err = unix.IoctlGetInt(slave, unix.TIOCGPGRP)
	report("tiocgpgrp", err)
	_, err = unix.IoctlGetInt(slave, unix.TIOCINQ)
	report("tiocinq", err)
	return 0
}

// TestSeccompRefusesTIOCSTI installs the real filter in a child process
// that holds a pty as its controlling terminal: TIOCSTI and TIOCLINUX fail
// with EPERM (the kernel allowed TIOCSTI before the filter), the ioctls a
// program uses on its own terminal still work.
func TestSeccompRefusesTIOCSTI(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skipf("no /dev/ptmx: %v", err)
	}
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), ioctlChildEnv+"=1")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := c.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, res, ok := strings.Cut(l, " "); ok {
			got[name] = res
		}
	}
	legacy, _ := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti")
	if strings.TrimSpace(string(legacy)) != "0" || os.Geteuid() == 0 {
		if got["before-tiocsti"] != "ok" {
			t.Errorf("before the filter TIOCSTI on the own terminal: %q, want ok (the baseline the filter must change)", got["before-tiocsti"])
		}
	}
	eperm := fmt.Sprintf("errno %d", int(unix.EPERM))
	for _, name := range []string{"tiocsti", "tiocsti-master", "tiocsti-high-bits", "tioclinux"} {
		if got[name] != eperm {
			t.Errorf("%s under the filter: %q, want %q", name, got[name], eperm)
		}
	}
	for _, name := range []string{"tcgets", "tcsets", "tiocswinsz", "tiocgwinsz", "tiocgpgrp", "tiocinq"} {
		if got[name] != "ok" {
			t.Errorf("%s under the filter: %q, want ok", name, got[name])
		}
	}
}

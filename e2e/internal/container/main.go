//go:build linux

// Command container runs a command the way a container runtime's defaults
// would confine it, for the e2e tests of docs/containers.md: a seccomp
// filter like Docker's default profile for a process without
// CAP_SYS_ADMIN (clone with any CLONE_NEW* flag, unshare and setns fail
// with EPERM; clone3 with ENOSYS, so that callers fall back to clone), and
// a bounding set without CAP_SYS_ADMIN and CAP_NET_ADMIN, which Docker and
// Kubernetes do not grant by default; with -mask-proc also, in a mount
// namespace of its own, parts of /proc hidden under other mounts as
// Docker's masked paths are (/proc/keys under /dev/null, a read-only tmpfs
// on /proc/acpi where it exists).
//
//	container [-seccomp=false] [-mask-proc] [-keep=CAP,...] -- CMD [ARG]...
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// namespaceFlags are the clone flags Docker's default seccomp profile
// refuses without CAP_SYS_ADMIN (0x7E020000).
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

func main() {
	withSeccomp := flag.Bool("seccomp", true, "install the Docker-like seccomp filter")
	keep := flag.String("keep", "", "comma-separated capabilities to keep (sys_admin, net_admin)")
	maskProc := flag.Bool("mask-proc", false, "hide parts of /proc under other mounts, as Docker does")
	flag.Parse()
	argv := flag.Args()
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "usage: container [-seccomp=false] [-keep=CAP,...] -- CMD [ARG]...")
		os.Exit(2)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fail(err)
	}
	// Capabilities and the bounding set are per thread; exec happens on
	// this one.
	runtime.LockOSThread()
	if *maskProc {
		if err := hideProc(); err != nil {
			fail(fmt.Errorf("masking /proc: %w", err))
		}
	}
	if *withSeccomp {
		if err := installFilter(); err != nil {
			fail(fmt.Errorf("seccomp: %w", err))
		}
	}
	drop := map[string]uintptr{"sys_admin": unix.CAP_SYS_ADMIN, "net_admin": unix.CAP_NET_ADMIN}
	for _, k := range strings.Split(*keep, ",") {
		delete(drop, strings.TrimSpace(k))
	}
	for name, c := range drop {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			fail(fmt.Errorf("dropping %s from the bounding set: %w", name, err))
		}
	}
	fail(syscall.Exec(path, argv, os.Environ()))
}

// hideProc gives this thread (and what it executes) a mount namespace of
// its own in which /proc/keys is covered by /dev/null and /proc/acpi by an
// empty read-only tmpfs.
func hideProc() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := unix.Mount("/dev/null", "/proc/keys", "", unix.MS_BIND, ""); err != nil {
		return err
	}
	if _, err := os.Stat("/proc/acpi"); err == nil {
		if err := unix.Mount("tmpfs", "/proc/acpi", "tmpfs", unix.MS_RDONLY, ""); err != nil {
			return err
		}
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "container:", err)
	os.Exit(126)
}

// installFilter installs the filter on every thread of the process.
func installFilter() error {
	const (
		offNr, offArch, offArg0Low = 0, 4, 16
		retAllow                   = unix.SECCOMP_RET_ALLOW
		retEPERM                   = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		retENOSYS                  = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	var audit, cloneNr, unshareNr, setnsNr, clone3Nr uint32
	switch runtime.GOARCH {
	case "amd64":
		audit, cloneNr, unshareNr, setnsNr, clone3Nr = unix.AUDIT_ARCH_X86_64, 56, 272, 308, 435
	case "arm64":
		audit, cloneNr, unshareNr, setnsNr, clone3Nr = unix.AUDIT_ARCH_AARCH64, 220, 97, 268, 435
	default:
		return fmt.Errorf("no system call numbers for %s", runtime.GOARCH)
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: audit, SkipFalse: 7}, // other ABIs: allow
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: clone3Nr, SkipTrue: 7},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unshareNr, SkipTrue: 5},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: setnsNr, SkipTrue: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: cloneNr, SkipFalse: 2},
		bpf.LoadAbsolute{Off: offArg0Low, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: namespaceFlags, SkipTrue: 1},
		bpf.RetConstant{Val: retAllow},
		bpf.RetConstant{Val: retEPERM},
		bpf.RetConstant{Val: retENOSYS},
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return e
	}
	return nil
}

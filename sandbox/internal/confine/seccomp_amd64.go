//go:build linux && amd64

package confine

import "golang.org/x/sys/unix"

// seccompABIs returns the system call ABIs of x86-64: the native one (with
// the x32 bit refused) and i386 compat.
func seccompABIs() ([]abiRules, error) {
	return []abiRules{
		{audit: unix.AUDIT_ARCH_X86_64, socket: unix.SYS_SOCKET, socketcall: -1,
			ioUring: []uint32{unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER},
			addKey:  unix.SYS_ADD_KEY, requestKey: unix.SYS_REQUEST_KEY, keyctl: unix.SYS_KEYCTL,
			connect: unix.SYS_CONNECT, socketpair: unix.SYS_SOCKETPAIR, seccomp: unix.SYS_SECCOMP, ioctl: unix.SYS_IOCTL, x32Bit: 0x40000000},
		// i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl).
		{audit: unix.AUDIT_ARCH_I386, socket: 359, socketcall: 102, ioUring: []uint32{425, 426, 427},
			addKey: 286, requestKey: 287, keyctl: 288, connect: 362, socketpair: 360, seccomp: 354, ioctl: 54},
	}, nil
}

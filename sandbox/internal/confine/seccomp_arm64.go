//go:build linux && arm64

package confine

import "golang.org/x/sys/unix"

// seccompABIs returns the system call ABI of arm64; 32-bit ARM processes are
// killed by the filter's unknown-architecture rule.
func seccompABIs() ([]abiRules, error) {
	return []abiRules{
		{audit: unix.AUDIT_ARCH_AARCH64, socket: unix.SYS_SOCKET, socketcall: -1,
			ioUring: []uint32{unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER},
			addKey:  unix.SYS_ADD_KEY, requestKey: unix.SYS_REQUEST_KEY, keyctl: unix.SYS_KEYCTL,
			connect: unix.SYS_CONNECT, socketpair: unix.SYS_SOCKETPAIR, seccomp: unix.SYS_SECCOMP, ioctl: unix.SYS_IOCTL},
	}, nil
}

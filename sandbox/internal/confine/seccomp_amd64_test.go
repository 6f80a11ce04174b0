//go:build linux && amd64

package confine

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData lays out struct seccomp_data as the BPF interpreter reads
// it: the interpreter loads 32-bit words big-endian where the kernel loads
// them in native (little-endian) order, so each word is stored big-endian
// at the offset where the kernel finds it: a 64-bit argument's low half at
// +0, its high half at +4.
func seccompData(arch uint32, nr int32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], uint32(nr))
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[16+8*i+4:], uint32(a>>32))
	}
	return b
}

// filterVM builds the filter of this architecture with rule ur, assembles it, and returns a
// function running it in a BPF interpreter over one seccomp_data.
func filterVM(t *testing.T, ur unixRule) func(name string, data []byte) int {
	t.Helper()
	abis, err := seccompABIs()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := buildFilter(abis, ur)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return func(name string, data []byte) int {
		got, err := vm.Run(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return got
	}
}

// TestSeccompProgram runs the filter in a BPF interpreter over system calls
// of every ABI an x86-64 process can use, including ones no test process
// here could issue (i386 socketcall, x32).
func TestSeccompProgram(t *testing.T) {
	const (
		x86   = unix.AUDIT_ARCH_X86_64
		i386  = unix.AUDIT_ARCH_I386
		allow = retAllow
		eperm = retEPERM
		nofam = retNoFam
		kUser = 0xfffffffc // KEY_SPEC_USER_KEYRING as a 32-bit int
		kUSes = 0xfffffffb // KEY_SPEC_USER_SESSION_KEYRING
		kSess = 0xfffffffd // KEY_SPEC_SESSION_KEYRING
	)
	tests := []struct {
		name      string
		data      []byte
		want      uint32 // with the unix rule
		wantAllow uint32 // with AllowUnixSockets
	}{
		{"read", seccompData(x86, unix.SYS_READ, 0), allow, allow},
		{"socket AF_INET", seccompData(x86, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM), allow, allow},
		{"socket AF_UNIX", seccompData(x86, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM), eperm, allow},
		{"socket AF_UNIX high bits", seccompData(x86, unix.SYS_SOCKET, 0xffffffff00000000|unix.AF_UNIX), eperm, allow},
		{"socket AF_NETLINK route", seccompData(x86, unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE), allow, allow},
		{"socket AF_NETLINK route high bits", seccompData(x86, unix.SYS_SOCKET, 1<<40|unix.AF_NETLINK, unix.SOCK_RAW, 1<<33|unix.NETLINK_ROUTE), allow, allow},
		{"socket AF_NETLINK audit", seccompData(x86, unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT), nofam, nofam},
		{"socket AF_NETLINK uevent", seccompData(x86, unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_KOBJECT_UEVENT), nofam, nofam},
		{"socket AF_NETLINK sock_diag", seccompData(x86, unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_SOCK_DIAG), nofam, nofam},
		{"socket AF_INET6", seccompData(x86, unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_DGRAM), allow, allow},
		{"socket AF_INET high bits", seccompData(x86, unix.SYS_SOCKET, 1<<32|unix.AF_INET), allow, allow},
		{"socket AF_VSOCK", seccompData(x86, unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM), nofam, nofam},
		{"socket AF_PACKET", seccompData(x86, unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW), nofam, nofam},
		{"socket AF_ALG", seccompData(x86, unix.SYS_SOCKET, unix.AF_ALG, unix.SOCK_SEQPACKET), nofam, nofam},
		{"socket AF_XDP", seccompData(x86, unix.SYS_SOCKET, unix.AF_XDP, unix.SOCK_RAW), nofam, nofam},
		{"socket AF_BLUETOOTH", seccompData(x86, unix.SYS_SOCKET, unix.AF_BLUETOOTH, unix.SOCK_RAW), nofam, nofam},
		{"socket AF_CAN", seccompData(x86, unix.SYS_SOCKET, unix.AF_CAN, unix.SOCK_RAW), nofam, nofam},
		{"socket AF_TIPC", seccompData(x86, unix.SYS_SOCKET, unix.AF_TIPC, unix.SOCK_RDM), nofam, nofam},
		{"socket AF_RDS", seccompData(x86, unix.SYS_SOCKET, unix.AF_RDS, unix.SOCK_SEQPACKET), nofam, nofam},
		{"socket AF_KEY", seccompData(x86, unix.SYS_SOCKET, unix.AF_KEY, unix.SOCK_RAW), nofam, nofam},
		{"socket AF_VSOCK high bits hiding AF_INET", seccompData(x86, unix.SYS_SOCKET, unix.AF_INET<<32|unix.AF_VSOCK), nofam, nofam},
		{"socket 255", seccompData(x86, unix.SYS_SOCKET, 255), nofam, nofam},
		{"add_key session", seccompData(x86, unix.SYS_ADD_KEY, 0, 0, 0, 0, kSess), allow, allow},
		{"add_key user", seccompData(x86, unix.SYS_ADD_KEY, 0, 0, 0, 0, kUser), eperm, eperm},
		{"add_key user session", seccompData(x86, unix.SYS_ADD_KEY, 0, 0, 0, 0, 0xffffffff00000000|kUSes), eperm, eperm},
		{"request_key", seccompData(x86, unix.SYS_REQUEST_KEY, 0, 0, 0, kSess), eperm, eperm},
		{"keyctl get id session", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, kSess), allow, allow},
		{"keyctl get id user", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, kUser), eperm, eperm},
		{"keyctl read user session", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_READ, kUSes), eperm, eperm},
		{"keyctl join anonymous", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0), allow, allow},
		{"keyctl join named", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0x7ffd00001000), eperm, eperm},
		{"keyctl join named high half only", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 1<<32), eperm, eperm},
		{"keyctl link to user", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_LINK, 12345, kUser), eperm, eperm},
		{"keyctl link to session", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_LINK, 12345, kSess), allow, allow},
		{"keyctl unlink from user session", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_UNLINK, 12345, kUSes), eperm, eperm},
		{"keyctl move from user", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_MOVE, 12345, kUser, kSess), eperm, eperm},
		{"keyctl move to user", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_MOVE, 12345, kSess, kUser), eperm, eperm},
		{"keyctl move session to session", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_MOVE, 12345, kSess, kSess), allow, allow},
		{"keyctl search into user", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_SEARCH, kSess, 0, 0, kUser), eperm, eperm},
		{"keyctl search session", seccompData(x86, unix.SYS_KEYCTL, unix.KEYCTL_SEARCH, kSess, 0, 0, 0), allow, allow},
		{"i386 keyctl get id user", seccompData(i386, 288, unix.KEYCTL_GET_KEYRING_ID, kUser), eperm, eperm},
		{"i386 add_key user", seccompData(i386, 286, 0, 0, 0, 0, kUser), eperm, eperm},
		{"i386 request_key", seccompData(i386, 287), eperm, eperm},
		{"i386 socket AF_VSOCK", seccompData(i386, 359, unix.AF_VSOCK), nofam, nofam},
		{"socketpair AF_UNIX stream", seccompData(x86, unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM), allow, allow},
		{"socketpair AF_UNIX seqpacket cloexec", seccompData(x86, unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC), allow, allow},
		{"socketpair AF_UNIX dgram", seccompData(x86, unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_DGRAM), eperm, allow},
		{"socketpair AF_INET", seccompData(x86, unix.SYS_SOCKETPAIR, unix.AF_INET, unix.SOCK_DGRAM), allow, allow},
		{"i386 socketpair AF_UNIX dgram", seccompData(i386, 360, unix.AF_UNIX, unix.SOCK_DGRAM), eperm, allow},
		{"i386 socketcall SYS_SOCKETPAIR", seccompData(i386, 102, 8), eperm, allow},
		{"io_uring_setup", seccompData(x86, unix.SYS_IO_URING_SETUP, 1), eperm, eperm},
		{"io_uring_enter", seccompData(x86, unix.SYS_IO_URING_ENTER), eperm, eperm},
		{"io_uring_register", seccompData(x86, unix.SYS_IO_URING_REGISTER), eperm, eperm},
		{"x32 read", seccompData(x86, 0x40000000|0), retENOSYS, retENOSYS},
		{"x32 socket", seccompData(x86, 0x40000000|41, unix.AF_UNIX), retENOSYS, retENOSYS},
		{"i386 read", seccompData(i386, 3), allow, allow},
		{"i386 socket AF_UNIX", seccompData(i386, 359, unix.AF_UNIX), eperm, allow},
		{"i386 socket AF_INET", seccompData(i386, 359, unix.AF_INET), allow, allow},
		{"i386 socketcall SYS_SOCKET", seccompData(i386, 102, 1), eperm, eperm},
		{"i386 socketcall SYS_CONNECT", seccompData(i386, 102, 3), allow, allow},
		{"i386 io_uring_setup", seccompData(i386, 425), eperm, eperm},
		{"unknown arch", seccompData(unix.AUDIT_ARCH_AARCH64, 198, unix.AF_UNIX), retKill, retKill},
		{"ioctl TIOCSTI", seccompData(x86, unix.SYS_IOCTL, 0, unix.TIOCSTI, 0x1000), eperm, eperm},
		{"ioctl TIOCSTI high bits", seccompData(x86, unix.SYS_IOCTL, 0, 0xffffffff00000000|unix.TIOCSTI), eperm, eperm},
		{"ioctl TIOCLINUX", seccompData(x86, unix.SYS_IOCTL, 0, unix.TIOCLINUX, 0x1000), eperm, eperm},
		{"i386 ioctl TIOCSTI", seccompData(i386, 54, 0, unix.TIOCSTI), eperm, eperm},
		{"i386 ioctl TIOCLINUX", seccompData(i386, 54, 0, unix.TIOCLINUX), eperm, eperm},
		{"ioctl TCGETS", seccompData(x86, unix.SYS_IOCTL, 0, unix.TCGETS, 0x1000), allow, allow},
		{"ioctl TCSETS", seccompData(x86, unix.SYS_IOCTL, 0, unix.TCSETS, 0x1000), allow, allow},
		{"ioctl TIOCGWINSZ", seccompData(x86, unix.SYS_IOCTL, 0, unix.TIOCGWINSZ, 0x1000), allow, allow},
		{"ioctl TIOCSWINSZ", seccompData(x86, unix.SYS_IOCTL, 0, unix.TIOCSWINSZ, 0x1000), allow, allow},
		{"ioctl TIOCSPGRP", seccompData(x86, unix.SYS_IOCTL, 0, unix.TIOCSPGRP, 0x1000), allow, allow},
		{"ioctl TIOCINQ", seccompData(x86, unix.SYS_IOCTL, 3, unix.TIOCINQ, 0x1000), allow, allow},
		{"ioctl TIOCSTI in the fd argument", seccompData(x86, unix.SYS_IOCTL, unix.TIOCSTI, unix.TCGETS), allow, allow},
		{"i386 ioctl TCGETS", seccompData(i386, 54, 0, unix.TCGETS), allow, allow},
	}
	for _, allowUnix := range []bool{false, true} {
		ur := unixRefused
		if allowUnix {
			ur = unixAll
		}
		run := filterVM(t, ur)
		for _, tt := range tests {
			got := run(tt.name, tt.data)
			want := tt.want
			if allowUnix {
				want = tt.wantAllow
			}
			if uint32(got) != want {
				t.Errorf("AllowUnixSockets=%v %s: filter returns %#x, want %#x", allowUnix, tt.name, uint32(got), want)
			}
		}
	}
}

// TestSeccompProgramByPath runs the unixByPath filter (--allow-unix-socket)
// in a BPF interpreter: unix sockets only of the stream kinds, every
// connect to the supervisor, the socketcall forms refused, and the other
// rules as without it.
func TestSeccompProgramByPath(t *testing.T) {
	const (
		x86  = unix.AUDIT_ARCH_X86_64
		i386 = unix.AUDIT_ARCH_I386
	)
	tests := []struct {
		name string
		data []byte
		want uint32
	}{
		{"read", seccompData(x86, unix.SYS_READ, 0), retAllow},
		{"connect", seccompData(x86, unix.SYS_CONNECT, 3, 0x1000, 110), retNotify},
		{"i386 connect", seccompData(i386, 362, 3, 0x1000, 110), retNotify},
		{"socket AF_UNIX stream", seccompData(x86, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK), retAllow},
		{"socket AF_UNIX seqpacket", seccompData(x86, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_SEQPACKET), retAllow},
		{"socket AF_UNIX dgram", seccompData(x86, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC), retEPERM},
		{"socket AF_UNIX stream in the high half", seccompData(x86, unix.SYS_SOCKET, unix.AF_UNIX, 1<<32|unix.SOCK_DGRAM), retEPERM},
		{"i386 socket AF_UNIX dgram", seccompData(i386, 359, unix.AF_UNIX, unix.SOCK_DGRAM), retEPERM},
		{"i386 socket AF_UNIX stream", seccompData(i386, 359, unix.AF_UNIX, unix.SOCK_STREAM), retAllow},
		{"socketpair AF_UNIX stream", seccompData(x86, unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM), retAllow},
		{"socketpair AF_UNIX dgram", seccompData(x86, unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_DGRAM), retEPERM},
		{"i386 socketpair AF_UNIX dgram", seccompData(i386, 360, unix.AF_UNIX, unix.SOCK_DGRAM), retEPERM},
		{"socket AF_INET", seccompData(x86, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM), retAllow},
		{"socket AF_VSOCK", seccompData(x86, unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM), retNoFam},
		{"i386 socketcall SYS_CONNECT", seccompData(i386, 102, 3), retEPERM},
		{"i386 socketcall SYS_SOCKETPAIR", seccompData(i386, 102, 8), retEPERM},
		{"i386 socketcall SYS_SOCKET", seccompData(i386, 102, 1), retEPERM},
		{"i386 socketcall SYS_SEND", seccompData(i386, 102, 9), retAllow},
		{"sendto", seccompData(x86, unix.SYS_SENDTO, 3, 0, 0, 0, 0x1000, 110), retAllow},
		{"add_key user", seccompData(x86, unix.SYS_ADD_KEY, 0, 0, 0, 0, 0xfffffffc), retEPERM},
		{"io_uring_setup", seccompData(x86, unix.SYS_IO_URING_SETUP, 1), retEPERM},
		{"x32 connect", seccompData(x86, 0x40000000|42), retENOSYS},
		{"seccomp filter with a listener", seccompData(x86, unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER|unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH), retEPERM},
		{"i386 seccomp filter with a listener", seccompData(i386, 354, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER), retEPERM},
		{"seccomp filter", seccompData(x86, unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC), retAllow},
		{"seccomp get action avail", seccompData(x86, unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER), retAllow},
		{"ioctl TIOCSTI", seccompData(x86, unix.SYS_IOCTL, 0, unix.TIOCSTI), retEPERM},
		{"ioctl TIOCGWINSZ", seccompData(x86, unix.SYS_IOCTL, 0, unix.TIOCGWINSZ), retAllow},
	}
	run := filterVM(t, unixByPath)
	for _, tt := range tests {
		if got := run(tt.name, tt.data); uint32(got) != tt.want {
			t.Errorf("%s: filter returns %#x, want %#x", tt.name, uint32(got), tt.want)
		}
	}
}

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

// TestSeccompProgram runs the filter in a BPF interpreter over system calls
// of every ABI an x86-64 process can use, including ones no test process
// here could issue (i386 socketcall, x32).
func TestSeccompProgram(t *testing.T) {
	abis, err := seccompABIs()
	if err != nil {
		t.Fatal(err)
	}
	const (
		x86   = unix.AUDIT_ARCH_X86_64
		i386  = unix.AUDIT_ARCH_I386
		allow = retAllow
		eperm = retEPERM
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
		{"socket AF_NETLINK", seccompData(x86, unix.SYS_SOCKET, unix.AF_NETLINK), allow, allow},
		{"socketpair AF_UNIX", seccompData(x86, unix.SYS_SOCKETPAIR, unix.AF_UNIX), allow, allow},
		{"io_uring_setup", seccompData(x86, unix.SYS_IO_URING_SETUP, 1), eperm, eperm},
		{"io_uring_enter", seccompData(x86, unix.SYS_IO_URING_ENTER), eperm, eperm},
		{"io_uring_register", seccompData(x86, unix.SYS_IO_URING_REGISTER), eperm, eperm},
		{"x32 read", seccompData(x86, 0x40000000|0), retENOSYS, retENOSYS},
		{"x32 socket", seccompData(x86, 0x40000000|41, unix.AF_UNIX), retENOSYS, retENOSYS},
		{"i386 read", seccompData(i386, 3), allow, allow},
		{"i386 socket AF_UNIX", seccompData(i386, 359, unix.AF_UNIX), eperm, allow},
		{"i386 socket AF_INET", seccompData(i386, 359, unix.AF_INET), allow, allow},
		{"i386 socketcall SYS_SOCKET", seccompData(i386, 102, 1), eperm, allow},
		{"i386 socketcall SYS_CONNECT", seccompData(i386, 102, 3), allow, allow},
		{"i386 io_uring_setup", seccompData(i386, 425), eperm, eperm},
		{"unknown arch", seccompData(unix.AUDIT_ARCH_AARCH64, 198, unix.AF_UNIX), retKill, retKill},
	}
	for _, allowUnix := range []bool{false, true} {
		prog, err := buildFilter(abis, allowUnix)
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
		for _, tt := range tests {
			got, err := vm.Run(tt.data)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
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

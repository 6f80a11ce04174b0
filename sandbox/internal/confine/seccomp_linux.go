//go:build linux

package confine

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter refuses, with EPERM:
//   - socket(AF_UNIX, ...): path sockets lead out of the sandbox (docker.sock,
//     ssh-agent, D-Bus, other forwarders), unless AllowUnixSockets is set;
//   - io_uring_setup, io_uring_enter and io_uring_register: io_uring can
//     create sockets without the socket(2) system call the filter checks.
//
// socketpair(AF_UNIX, ...) is allowed: it makes an anonymous connected pair
// that cannot reach any path or abstract socket, and many programs use it.
// System calls of an architecture the filter does not know are refused by
// killing the process; the x32 ABI on x86-64 is refused with ENOSYS; the
// i386 ABI on x86-64 gets the same rules, and socketcall(SYS_SOCKET) (whose
// arguments a filter cannot read) is refused whenever the unix rule is on.

// seccomp_data offsets (include/uapi/linux/seccomp.h).
const (
	offNr      = 0
	offArch    = 4
	offArg0Low = 16 // low 32 bits of args[0] on a little-endian machine
)

// abiRules says, for one system call ABI, which numbers the filter looks at.
type abiRules struct {
	audit      uint32 // AUDIT_ARCH_* value
	socket     int32  // socket(2), or -1
	socketcall int32  // socketcall(2) (multiplexer), or -1
	ioUring    []uint32
	x32Bit     uint32 // on x86-64: numbers with this bit set are the x32 ABI
}

// sockSYS_SOCKET is socketcall's call number for socket(2).
const sockSYS_SOCKET = 1

// filterProg is a tiny assembler for forward jumps.
type filterProg struct {
	ins    []bpf.Instruction
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at          int
	ifTrue, ifF string
}

func (p *filterProg) emit(i bpf.Instruction) { p.ins = append(p.ins, i) }
func (p *filterProg) label(name string)      { p.labels[name] = len(p.ins) }
func (p *filterProg) load(off uint32) {
	p.emit(bpf.LoadAbsolute{Off: off, Size: 4})
}
func (p *filterProg) ret(v uint32) { p.emit(bpf.RetConstant{Val: v}) }

// jump emits "if A cond val goto ifTrue else goto ifFalse"; "" means the
// next instruction.
func (p *filterProg) jump(cond bpf.JumpTest, val uint32, ifTrue, ifFalse string) {
	p.fixups = append(p.fixups, fixup{at: len(p.ins), ifTrue: ifTrue, ifF: ifFalse})
	p.emit(bpf.JumpIf{Cond: cond, Val: val})
}

func (p *filterProg) resolve() ([]bpf.Instruction, error) {
	for _, f := range p.fixups {
		j := p.ins[f.at].(bpf.JumpIf)
		skip := func(label string) (uint8, error) {
			if label == "" {
				return 0, nil
			}
			to, ok := p.labels[label]
			if !ok {
				return 0, fmt.Errorf("seccomp filter: undefined label %q", label)
			}
			d := to - f.at - 1
			if d < 0 || d > 255 {
				return 0, fmt.Errorf("seccomp filter: jump to %q out of range (%d)", label, d)
			}
			return uint8(d), nil
		}
		var err error
		if j.SkipTrue, err = skip(f.ifTrue); err != nil {
			return nil, err
		}
		if j.SkipFalse, err = skip(f.ifF); err != nil {
			return nil, err
		}
		p.ins[f.at] = j
	}
	return p.ins, nil
}

const (
	retAllow  = unix.SECCOMP_RET_ALLOW
	retKill   = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// buildFilter returns the sandbox's seccomp program for the given ABIs (the
// first is the native one).
func buildFilter(abis []abiRules, allowUnix bool) ([]bpf.Instruction, error) {
	p := &filterProg{labels: map[string]int{}}
	p.load(offArch)
	for i, a := range abis {
		p.jump(bpf.JumpEqual, a.audit, fmt.Sprintf("abi%d", i), "")
	}
	p.ret(retKill)
	for i, a := range abis {
		l := fmt.Sprintf("abi%d", i)
		p.label(l)
		p.load(offNr)
		if a.x32Bit != 0 {
			p.jump(bpf.JumpBitsSet, a.x32Bit, l+"enosys", "")
		}
		for _, nr := range a.ioUring {
			p.jump(bpf.JumpEqual, nr, l+"eperm", "")
		}
		if !allowUnix {
			if a.socket >= 0 {
				p.jump(bpf.JumpEqual, uint32(a.socket), l+"socket", "")
			}
			if a.socketcall >= 0 {
				p.jump(bpf.JumpEqual, uint32(a.socketcall), l+"socketcall", "")
			}
		}
		p.ret(retAllow)
		if !allowUnix {
			if a.socket >= 0 {
				// The kernel reads the domain as a 32-bit int: compare only
				// the low half so junk in the high half cannot dodge the rule.
				p.label(l + "socket")
				p.load(offArg0Low)
				p.jump(bpf.JumpEqual, unix.AF_UNIX, l+"eperm", "")
				p.ret(retAllow)
			}
			if a.socketcall >= 0 {
				p.label(l + "socketcall")
				p.load(offArg0Low)
				p.jump(bpf.JumpEqual, sockSYS_SOCKET, l+"eperm", "")
				p.ret(retAllow)
			}
		}
		p.label(l + "eperm")
		p.ret(retEPERM)
		p.label(l + "enosys")
		p.ret(retENOSYS)
	}
	return p.resolve()
}

// SupportsArch reports whether the seccomp filter knows the system calls of
// this architecture: a sandbox is never set up without its filter.
func SupportsArch() bool {
	_, err := seccompABIs()
	return err == nil
}

// installFilter loads the filter on the calling thread only (no TSYNC); the
// caller must have set no_new_privs on it.
func installFilter(allowUnix bool) error {
	abis, err := seccompABIs()
	if err != nil {
		return err
	}
	ins, err := buildFilter(abis, allowUnix)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return fmt.Errorf("assembling the seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return fmt.Errorf("installing the seccomp filter: %w", err)
	}
	return nil
}

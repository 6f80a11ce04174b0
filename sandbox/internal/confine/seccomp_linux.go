//go:build linux

package confine

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter:
//   - lets socket(2) create only the families a sandboxed command needs
//     (see socketFamilies): AF_INET and AF_INET6 (the proxy, and loopback),
//     AF_NETLINK with NETLINK_ROUTE only (getaddrinfo's AI_ADDRCONFIG,
//     getifaddrs, `ip addr`: reading the sandbox's own interfaces), and
//     AF_UNIX only with AllowUnixSockets (path sockets lead out of the
//     sandbox: docker.sock, ssh-agent, D-Bus), which is refused with EPERM
//     otherwise. Every other family (packet, vsock, bluetooth, CAN, TIPC,
//     RDS, XDP, ALG, key management, ...) and every other netlink protocol
//     is refused with EAFNOSUPPORT, as on a kernel without them: many
//     reach past the network namespace or nftables (vsock reaches the
//     hypervisor, ALG and XDP are kernel attack surface), none is needed;
//   - refuses io_uring_setup, io_uring_enter and io_uring_register (EPERM):
//     io_uring can create sockets without the socket(2) system call the
//     filter checks;
//   - keeps the command to its own keyrings (see keyringRules): add_key and
//     keyctl naming the user or user-session keyring (shared by every
//     process of the uid, so by concurrent identity runs), keyctl joining a
//     named session keyring, and request_key (whose upcall runs a program
//     on the host) are refused with EPERM;
//   - refuses the terminal ioctls that fake input or reach the console
//     (see ioctlRules): TIOCSTI (push bytes into a terminal's input, as if
//     typed) and TIOCLINUX (the virtual console's selection and paste),
//     with EPERM, on any descriptor. CMD runs in a session of its own, so
//     the kernel already refuses TIOCSTI on a terminal that is not its
//     controlling one; this is a second wall (a terminal CMD holds, such
//     as one passed as its stdout, stays closed to injection even where
//     dev.tty.legacy_tiocsti and the session rule would let it through).
//     Every other ioctl is allowed: programs use many on their own pty
//     (TCGETS, TCSETS, TIOCGWINSZ, ...).
//
// socketpair(AF_UNIX, ...) is allowed for stream and seqpacket pairs: they
// are anonymous and connected, reach no path or abstract socket, and many
// programs use them. Datagram pairs are refused (EPERM): a datagram socket
// can sendto(2) a path socket without connect (the i386 socketcall form of
// socketpair, whose arguments a filter cannot read, is refused too).
// System calls of an architecture the filter does not know are refused by
// killing the process; the x32 ABI on x86-64 is refused with ENOSYS; the
// i386 ABI on x86-64 gets the same rules, and socketcall(SYS_SOCKET) (whose
// arguments a filter cannot read) is refused with EPERM.

// seccomp_data offsets (include/uapi/linux/seccomp.h).
const (
	offNr      = 0
	offArch    = 4
	offArg0Low = 16 // low 32 bits of args[0] on a little-endian machine
)

// offArgLow is the offset of the low 32 bits of args[i], offArgHigh of the
// high 32 bits (little-endian machines).
func offArgLow(i int) uint32  { return offArg0Low + 8*uint32(i) }
func offArgHigh(i int) uint32 { return offArg0Low + 8*uint32(i) + 4 }

// abiRules says, for one system call ABI, which numbers the filter looks at.
type abiRules struct {
	audit      uint32 // AUDIT_ARCH_* value
	socket     int32  // socket(2), or -1
	socketcall int32  // socketcall(2) (multiplexer), or -1
	ioUring    []uint32
	addKey     int32  // add_key(2), or -1
	requestKey int32  // request_key(2), or -1
	keyctl     int32  // keyctl(2), or -1
	connect    int32  // connect(2), or -1 (looked at only with unixByPath)
	socketpair int32  // socketpair(2), or -1 (looked at unless unixAll)
	seccomp    int32  // seccomp(2), or -1 (looked at only with unixByPath)
	ioctl      int32  // ioctl(2), or -1
	x32Bit     uint32 // on x86-64: numbers with this bit set are the x32 ABI
}

// socketcall's call numbers for socket(2), connect(2) and socketpair(2).
const (
	sockSYS_SOCKET     = 1
	sockSYS_CONNECT    = 3
	sockSYS_SOCKETPAIR = 8
)

// unixRule says what the filter does with unix sockets.
type unixRule int

const (
	// unixRefused: socket(AF_UNIX, ...) is refused with EPERM.
	unixRefused unixRule = iota
	// unixAll: socket(AF_UNIX, ...) is allowed (AllowUnixSockets).
	unixAll
	// unixByPath: socket(AF_UNIX) and socketpair(AF_UNIX) may make only
	// SOCK_STREAM and SOCK_SEQPACKET sockets (neither can send to a path
	// without connect), and every connect(2) is handed to a supervisor
	// (SECCOMP_RET_USER_NOTIF), which decides it and makes it itself; the
	// i386 socketcall forms of the three are refused (EPERM), since a
	// filter cannot read their arguments. So is a seccomp filter of the
	// command's own with a notification listener (EPERM): of two filters
	// that both return SECCOMP_RET_USER_NOTIF the newer one is notified,
	// and its supervisor could let the kernel go on with the call.
	unixByPath
)

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
	retNoFam  = unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
	retNotify = unix.SECCOMP_RET_USER_NOTIF
)

// buildFilter returns the sandbox's seccomp program for the given ABIs (the
// first is the native one).
func buildFilter(abis []abiRules, ur unixRule) ([]bpf.Instruction, error) {
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
		calls := []struct {
			nr    int32
			label string
		}{{a.socket, "socket"}, {a.socketcall, "socketcall"}, {a.addKey, "addkey"}, {a.requestKey, "eperm"}, {a.keyctl, "keyctl"}, {a.ioctl, "ioctl"}}
		if ur != unixAll {
			calls = append(calls, struct {
				nr    int32
				label string
			}{a.socketpair, "socketpair"})
		}
		if ur == unixByPath {
			calls = append(calls, struct {
				nr    int32
				label string
			}{a.connect, "notify"}, struct {
				nr    int32
				label string
			}{a.seccomp, "seccomp"})
		}
		for _, c := range calls {
			if c.nr >= 0 {
				p.jump(bpf.JumpEqual, uint32(c.nr), l+c.label, "")
			}
		}
		p.ret(retAllow)
		if a.socket >= 0 {
			socketRules(p, l, ur)
		}
		if a.socketcall >= 0 {
			p.label(l + "socketcall")
			p.load(offArg0Low)
			if ur == unixByPath {
				p.jump(bpf.JumpEqual, sockSYS_CONNECT, l+"eperm", "")
			}
			if ur != unixAll {
				p.jump(bpf.JumpEqual, sockSYS_SOCKETPAIR, l+"eperm", "")
			}
			p.jump(bpf.JumpEqual, sockSYS_SOCKET, l+"eperm", l+"allow")
		}
		switch ur {
		case unixByPath:
			unixByPathRules(p, l)
		case unixRefused:
			unixTypeRules(p, l)
		}
		if a.addKey >= 0 || a.keyctl >= 0 {
			keyringRules(p, l)
		}
		if a.ioctl >= 0 {
			ioctlRules(p, l)
		}
		p.label(l + "eperm")
		p.ret(retEPERM)
		p.label(l + "enosys")
		p.ret(retENOSYS)
		p.label(l + "nofam")
		p.ret(retNoFam)
		p.label(l + "allow") // the target of the rules above (jumps go forward only)
		p.ret(retAllow)
	}
	return p.resolve()
}

// socketFamilies are the address families socket(2) may create (AF_UNIX
// only with AllowUnixSockets, AF_NETLINK only with netlinkProtocols).
var socketFamilies = []uint32{unix.AF_INET, unix.AF_INET6}

// netlinkProtocols are the netlink protocols socket(AF_NETLINK) may use.
var netlinkProtocols = []uint32{unix.NETLINK_ROUTE}

// socketRules emits the checks of socket(2)'s family and protocol. The
// kernel reads both as 32-bit ints: only the low halves are compared, so
// junk in the high halves cannot dodge a rule.
func socketRules(p *filterProg, l string, ur unixRule) {
	p.label(l + "socket")
	p.load(offArg0Low)
	for _, f := range socketFamilies {
		p.jump(bpf.JumpEqual, f, l+"allow", "")
	}
	unixTo := l + "eperm"
	switch ur {
	case unixAll:
		unixTo = l + "allow"
	case unixByPath:
		unixTo = l + "unixtype"
	}
	p.jump(bpf.JumpEqual, unix.AF_UNIX, unixTo, "")
	p.jump(bpf.JumpEqual, unix.AF_NETLINK, "", l+"nofam")
	p.load(offArgLow(2))
	for _, proto := range netlinkProtocols {
		p.jump(bpf.JumpEqual, proto, l+"allow", "")
	}
	p.ret(retNoFam)
}

// sockTypeMask is SOCK_TYPE_MASK: the bits of socket(2)'s type argument
// that are the type (the rest are SOCK_NONBLOCK and SOCK_CLOEXEC).
const sockTypeMask = 0xf

// unixByPathRules emits the rules of unixByPath: seccomp(2) may not
// install a filter with a listener, socketpair(AF_UNIX) and
// socket(AF_UNIX) (jumped to from socketRules) may make stream and
// seqpacket sockets only, and connect(2) goes to the supervisor.
func unixByPathRules(p *filterProg, l string) {
	p.label(l + "seccomp")
	p.load(offArg0Low)
	p.jump(bpf.JumpEqual, unix.SECCOMP_SET_MODE_FILTER, "", l+"allow")
	p.load(offArgLow(1))
	p.jump(bpf.JumpBitsSet, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, l+"eperm", l+"allow")
	unixTypeRules(p, l)
	p.label(l + "notify")
	p.ret(retNotify)
}

// unixTypeRules emits the rule that socketpair(AF_UNIX) (and, with
// unixByPath, socket(AF_UNIX), jumped to from socketRules) may make stream
// and seqpacket sockets only: a datagram socket, even one of an anonymous
// pair, can sendto(2) any path socket it can see (a host's /dev/log, a
// notify socket) without connect.
func unixTypeRules(p *filterProg, l string) {
	p.label(l + "socketpair")
	p.load(offArg0Low)
	p.jump(bpf.JumpEqual, unix.AF_UNIX, "", l+"allow")
	p.label(l + "unixtype")
	p.load(offArgLow(1))
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: sockTypeMask})
	p.jump(bpf.JumpEqual, unix.SOCK_STREAM, l+"allow", "")
	p.jump(bpf.JumpEqual, unix.SOCK_SEQPACKET, l+"allow", l+"eperm")
}

// The special keyring ids (a key_serial_t, a 32-bit int) that name keyrings
// shared by every process of a uid.
const (
	keySpecUser        = uint32(0xffffffff + unix.KEY_SPEC_USER_KEYRING + 1)
	keySpecUserSession = uint32(0xffffffff + unix.KEY_SPEC_USER_SESSION_KEYRING + 1)
)

// keyringRules emits the checks of add_key(2) and keyctl(2): neither may
// name the user or user-session keyring, in any of the arguments where an
// operation takes a keyring, and keyctl may join only a new anonymous
// session keyring (name NULL). The command starts in a fresh session
// keyring of its own (JoinSessionKeyring), so the keyrings it possesses
// are its own.
func keyringRules(p *filterProg, l string) {
	shared := func(off uint32, next string) {
		p.load(off)
		p.jump(bpf.JumpEqual, keySpecUser, l+"eperm", "")
		p.jump(bpf.JumpEqual, keySpecUserSession, l+"eperm", next)
	}
	p.label(l + "addkey")
	shared(offArgLow(4), l+"allow") // add_key(type, desc, payload, plen, keyring)
	p.label(l + "keyctl")
	shared(offArgLow(1), "") // every operation's first argument
	p.load(offArgLow(0))
	p.jump(bpf.JumpEqual, unix.KEYCTL_JOIN_SESSION_KEYRING, l+"kjoin", "")
	p.jump(bpf.JumpEqual, unix.KEYCTL_LINK, l+"karg2", "")
	p.jump(bpf.JumpEqual, unix.KEYCTL_UNLINK, l+"karg2", "")
	p.jump(bpf.JumpEqual, unix.KEYCTL_MOVE, l+"kmove", "")
	p.jump(bpf.JumpEqual, unix.KEYCTL_SEARCH, l+"ksearch", l+"allow")
	p.label(l + "kjoin")
	p.load(offArgLow(1))
	p.jump(bpf.JumpEqual, 0, "", l+"eperm")
	p.load(offArgHigh(1))
	p.jump(bpf.JumpEqual, 0, l+"allow", l+"eperm")
	p.label(l + "kmove") // (key, from, to, flags)
	shared(offArgLow(3), "")
	p.label(l + "karg2") // link, unlink: (key, keyring)
	shared(offArgLow(2), l+"allow")
	p.label(l + "ksearch") // (keyring, type, desc, dest)
	shared(offArgLow(4), l+"allow")
}

// refusedIoctls are the ioctl requests the filter refuses with EPERM:
// TIOCSTI fakes input on a terminal (keys for the user's shell after the
// run, or the answer to --ask), TIOCLINUX drives the virtual console
// (its selection can be pasted as input). Both have the same number on
// every architecture the filter supports (asm-generic and x86 alike).
var refusedIoctls = []uint32{unix.TIOCSTI, unix.TIOCLINUX}

// ioctlRules emits the check of ioctl(2)'s request. The kernel reads the
// request as an unsigned int, so only the low half of the argument is
// compared: junk in the high half cannot dodge the rule.
func ioctlRules(p *filterProg, l string) {
	p.label(l + "ioctl")
	p.load(offArgLow(1))
	for _, r := range refusedIoctls {
		p.jump(bpf.JumpEqual, r, l+"eperm", "")
	}
	p.ret(retAllow)
}

// SupportsArch reports whether the seccomp filter knows the system calls of
// this architecture: a sandbox is never set up without its filter.
func SupportsArch() bool {
	_, err := seccompABIs()
	return err == nil
}

// installFilter loads the filter on the calling thread only (no TSYNC); the
// caller must have set no_new_privs on it. With unixByPath it returns the
// filter's notification listener (close-on-exec), else -1.
func installFilter(ur unixRule) (int, error) {
	abis, err := seccompABIs()
	if err != nil {
		return -1, err
	}
	ins, err := buildFilter(abis, ur)
	if err != nil {
		return -1, err
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return -1, fmt.Errorf("assembling the seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if ur == unixByPath {
		fd, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&prog)))
		if e != 0 {
			return -1, fmt.Errorf("installing the seccomp filter with a notification listener: %w", e)
		}
		return int(fd), nil
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return -1, fmt.Errorf("installing the seccomp filter: %w", err)
	}
	return -1, nil
}

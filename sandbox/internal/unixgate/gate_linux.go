//go:build linux

package unixgate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The supervisor never lets the kernel go on with a notified connect(2)
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE): between its check and the kernel's
// own reading, another thread of the command could rewrite the address or
// put another socket at the descriptor. It takes the command's socket
// itself (pidfd_getfd: the same open file, so the same flags and options),
// reads the address once, and connects that socket with the copy it
// decided on, then answers with connect's result. An allowed socket is
// reached through the descriptor opened when the sandbox started
// (/proc/self/fd/N of an O_PATH descriptor), so renaming or replacing the
// name later changes nothing, and the socket need not be visible in the
// command's view of the file system. The connect itself is made from a
// thread without capabilities: the command gets no privilege of the init's
// through it.

// Gate holds the allowed sockets.
type Gate struct {
	paths []string   // clean absolute paths, as the command names them
	files []*os.File // O_PATH descriptors, one per path (shared by aliases)
	index []int      // paths[i] is reached through files[index[i]]
}

// Open opens the unix sockets at paths (absolute) for a Gate. Each is
// allowed by its path as given and by the path with symbolic links
// resolved. It must be called before the file system view hides them.
func Open(paths []string) (*Gate, error) {
	g := &Gate{}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("unix socket %s: not an absolute path", p)
		}
		fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("opening the allowed unix socket %s: %w", p, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			unix.Close(fd)
			g.Close()
			if err != nil {
				return nil, fmt.Errorf("allowed unix socket %s: %w", p, err)
			}
			return nil, fmt.Errorf("allowed unix socket %s: not a socket", p)
		}
		g.files = append(g.files, os.NewFile(uintptr(fd), p))
		names := []string{filepath.Clean(p)}
		if r, err := filepath.EvalSymlinks(p); err == nil && r != names[0] {
			names = append(names, r)
		}
		for _, n := range names {
			g.paths = append(g.paths, n)
			g.index = append(g.index, len(g.files)-1)
		}
	}
	return g, nil
}

// Close closes the descriptors of the allowed sockets.
func (g *Gate) Close() {
	for _, f := range g.files {
		f.Close()
	}
	g.files = nil
}

// seccompNotif is struct seccomp_notif (include/uapi/linux/seccomp.h).
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

// seccompNotifResp is struct seccomp_notif_resp.
type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// ioctlNotifIDValid is SECCOMP_IOCTL_NOTIF_ID_VALID (_IOW('!', 2, __u64)).
const ioctlNotifIDValid = 0x40082102

// sockaddrStorage is sizeof(struct sockaddr_storage): the kernel refuses
// longer addresses (EINVAL).
const sockaddrStorage = 128

// Serve answers the notifications of the seccomp listener (every
// connect(2) of the command) until the listener fails (the filter's last
// user is gone). Each call is answered from its own goroutine: a blocking
// connect blocks only its caller. Serve takes ownership of listener.
func (g *Gate) Serve(listener int) error {
	defer unix.Close(listener)
	for {
		var n seccompNotif
		if err := ioctlPtr(listener, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&n)); err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOENT) {
				continue // interrupted, or the caller went away first
			}
			return fmt.Errorf("receiving a seccomp notification: %w", err)
		}
		go g.answer(listener, n)
	}
}

// answer makes the notified connect and sends its result.
func (g *Gate) answer(listener int, n seccompNotif) {
	errno := g.connect(listener, n)
	resp := seccompNotifResp{ID: n.ID, Error: -int32(errno)}
	// ENOENT: the caller is gone or was interrupted; nothing to answer.
	_ = ioctlPtr(listener, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp))
}

// connect makes the connect(2) that n describes on the caller's behalf
// and returns its errno (0: connected).
func (g *Gate) connect(listener int, n seccompNotif) unix.Errno {
	fd, addr, alen := int(int32(n.Args[0])), uintptr(n.Args[1]), uint32(n.Args[2])
	if n.Arch == unix.AUDIT_ARCH_I386 {
		addr = uintptr(uint32(addr))
	}
	if int32(alen) < 0 || alen > sockaddrStorage {
		return unix.EINVAL
	}
	pid := int(n.Pid) // the calling thread
	tgid, err := threadGroup(pid)
	if err != nil {
		return unix.ESRCH
	}
	pidfd, err := unix.PidfdOpen(tgid, 0) // a process's pidfd: any kernel with pidfd_getfd
	if err != nil {
		return unix.ESRCH
	}
	defer unix.Close(pidfd)
	valid := func() bool { return ioctlPtr(listener, ioctlNotifIDValid, unsafe.Pointer(&n.ID)) == nil }
	if !valid() { // the thread, so its process, may be gone (and its id reused) by now
		return unix.ESRCH
	}
	sock, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return errno // EBADF: no such descriptor
		}
		return unix.EBADF
	}
	defer unix.Close(sock)
	sa := make([]byte, alen)
	if alen > 0 {
		local := []unix.Iovec{{Base: &sa[0], Len: uint64(alen)}}
		remote := []unix.RemoteIovec{{Base: addr, Len: int(alen)}}
		if got, err := unix.ProcessVMReadv(pid, local, remote, 0); err != nil || got != int(alen) {
			return unix.EFAULT
		}
	}
	if !valid() {
		return unix.ESRCH
	}
	cwd := func() (string, error) {
		d, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
		if err == nil && !valid() {
			err = errors.New("the caller is gone")
		}
		return d, err
	}
	d := Decide(sa, cwd, g.paths)
	switch d.Verdict {
	case Allowed:
		f := g.files[g.index[d.Index]]
		sa = unixSockaddr("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	case Refused:
		return unix.EACCES
	}
	return connectWithoutCapabilities(sock, sa)
}

// connectWithoutCapabilities connects fd to sa from a thread of its own
// that has no capabilities (and ends with the call), so that no check the
// kernel makes in connect(2) on the caller's capabilities (netlink groups,
// file permissions with CAP_DAC_OVERRIDE) passes for the command because
// the init makes the call.
func connectWithoutCapabilities(fd int, sa []byte) unix.Errno {
	done := make(chan unix.Errno, 1)
	go func() {
		// Never unlocked: the runtime ends the thread with the goroutine.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var none [2]unix.CapUserData
		if err := unix.Capset(&hdr, &none[0]); err != nil {
			done <- unix.EPERM
			return
		}
		done <- rawConnect(fd, sa)
	}()
	return <-done
}

// threadGroup returns the process (thread group) of thread tid.
func threadGroup(tid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no Tgid", tid)
}

// unixSockaddr is a sockaddr_un for path p.
func unixSockaddr(p string) []byte {
	b := make([]byte, 2, 2+len(p))
	*(*uint16)(unsafe.Pointer(&b[0])) = afUnix
	return append(b, p...)
}

// rawConnect connects fd to the raw socket address sa.
func rawConnect(fd int, sa []byte) unix.Errno {
	var p unsafe.Pointer
	if len(sa) > 0 {
		p = unsafe.Pointer(&sa[0])
	}
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(p), uintptr(len(sa)))
	return e
}

// ioctlPtr is ioctl(fd, req, p).
func ioctlPtr(fd int, req uint, p unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p))
	if e != 0 {
		return e
	}
	return nil
}

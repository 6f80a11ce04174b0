//go:build linux

package sandbox

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fileFD returns f's descriptor without switching it to blocking mode (which
// (*os.File).Fd does, and which would change a file description shared with
// other processes).
func fileFD(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(u uintptr) { fd = int(u) })
	}
	return fd
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fd := fileFD(f)
	if fd < 0 {
		return false
	}
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// openPTY returns a new pseudo-terminal: the master (non-blocking, served by
// Go's poller) and the slave (for the command).
func openPTY() (master, slave *os.File, err error) {
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(m)
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master: no path lookup, so no
	// race with another devpts instance.
	s, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		n, err := unix.IoctlGetUint32(m, unix.TIOCGPTN)
		if err != nil {
			unix.Close(m)
			return nil, nil, fmt.Errorf("finding the pty slave: %w", err)
		}
		fd, err := unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(m)
			return nil, nil, fmt.Errorf("opening the pty slave: %w", err)
		}
		s = uintptr(fd)
	}
	return os.NewFile(uintptr(m), "/dev/ptmx"), os.NewFile(s, "pty-slave"), nil
}

// terminal relays a host terminal to a pty that the command owns.
type terminal struct {
	master, slave *os.File
	in            *os.File  // the host terminal CMD's input comes from
	out           io.Writer // where the pty's output goes
	sizeFrom      int       // fd whose window size the pty copies
	inFD          int
	saved         *unix.Termios
	stopR, stopW  int
	hold          *sync.Mutex // while locked by someone else, no input is relayed
	wg            sync.WaitGroup
	outDone       chan struct{}
}

// newTerminal opens a pty for a command whose stdin is the terminal in; the
// pty copies in's modes and window size, and in is put in raw mode so that
// keys (Ctrl-C, Ctrl-Z) reach the command through the pty.
func newTerminal(in *os.File, out io.Writer) (*terminal, error) {
	t := &terminal{in: in, out: out, inFD: fileFD(in), stopR: -1, stopW: -1}
	t.sizeFrom = t.inFD
	saved, err := unix.IoctlGetTermios(t.inFD, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("reading the terminal's modes: %w", err)
	}
	if t.master, t.slave, err = openPTY(); err != nil {
		return nil, err
	}
	sfd := fileFD(t.slave)
	_ = unix.IoctlSetTermios(sfd, unix.TCSETS, saved)
	t.resize()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.master.Close()
		t.slave.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	t.stopR, t.stopW = p[0], p[1]
	raw := *saved
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(t.inFD, unix.TCSETS, &raw); err != nil {
		t.closeAll()
		return nil, fmt.Errorf("putting the terminal in raw mode: %w", err)
	}
	t.saved = saved
	return t, nil
}

// resize copies the host terminal's window size to the pty (the kernel then
// sends SIGWINCH to the pty's foreground process group).
func (t *terminal) resize() {
	if ws, err := unix.IoctlGetWinsize(t.sizeFrom, unix.TIOCGWINSZ); err == nil {
		_ = unix.IoctlSetWinsize(fileFD(t.master), unix.TIOCSWINSZ, ws)
	}
}

// start begins relaying, once the command holds the slave; the caller's copy
// of the slave is closed so that the end of the sandbox reads as EOF.
func (t *terminal) start() {
	t.slave.Close()
	t.outDone = make(chan struct{})
	go func() {
		defer close(t.outDone)
		_, _ = io.Copy(t.out, t.master) // ends with EIO once every slave fd is closed
	}()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.relayInput()
	}()
}

// relayInput copies the host terminal to the pty master. It polls so that it
// never sits in a read it cannot abandon: stop() ends it without consuming
// a key meant for whatever runs after sandgate.
func (t *terminal) relayInput() {
	buf := make([]byte, 4096)
	fds := []unix.PollFd{{Fd: int32(t.inFD), Events: unix.POLLIN}, {Fd: int32(t.stopR), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) == 0 {
			continue
		}
		n, ok, err := t.readHeld(buf, fds[1:])
		if !ok {
			continue
		}
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if n <= 0 {
			return
		}
		if _, err := t.master.Write(buf[:n]); err != nil {
			return
		}
	}
}

// readHeld reads the host terminal unless the input is held (Spec.InputHold):
// then it waits a little, watching stop, and reports !ok. Under the hold it
// checks again that input is still there, since the holder may have read it,
// so that it never blocks in a read it cannot abandon.
func (t *terminal) readHeld(buf []byte, stop []unix.PollFd) (n int, ok bool, err error) {
	if t.hold != nil {
		if !t.hold.TryLock() {
			stop[0].Revents = 0
			_, _ = unix.Poll(stop, 20)
			return 0, false, nil
		}
		defer t.hold.Unlock()
		again := []unix.PollFd{{Fd: int32(t.inFD), Events: unix.POLLIN}}
		if n, _ := unix.Poll(again, 0); n == 0 {
			return 0, false, nil
		}
	}
	n, err = unix.Read(t.inFD, buf)
	return n, true, err
}

// stop waits (briefly) for the pty's remaining output, ends the relays and
// restores the host terminal.
func (t *terminal) stop(grace time.Duration) {
	if t.outDone != nil {
		timer := time.NewTimer(grace)
		select {
		case <-t.outDone:
		case <-timer.C:
		}
		timer.Stop()
	}
	if t.stopW >= 0 {
		_, _ = unix.Write(t.stopW, []byte{0})
	}
	t.master.Close()
	t.wg.Wait()
	if t.outDone != nil {
		<-t.outDone
	}
	t.restore()
	t.closeAll()
}

func (t *terminal) restore() {
	if t.saved != nil {
		_ = unix.IoctlSetTermios(t.inFD, unix.TCSETS, t.saved)
		t.saved = nil
	}
}

func (t *terminal) closeAll() {
	t.master.Close()
	t.slave.Close()
	for _, fd := range []int{t.stopR, t.stopW} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	t.stopR, t.stopW = -1, -1
}

//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxPipeSize is the capacity asked of each splice pipe, as Go's own splice
// does: large transfers then move a megabyte per call.
const maxPipeSize = 1 << 20

// pipe is one splice pipe: two descriptors and the kernel buffer between.
type pipe struct {
	r, w   int
	size   int       // capacity in bytes
	idleAt time.Time // when it was last given back to the pool
}

func newPipe() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	p := &pipe{r: fds[0], w: fds[1], size: 64 << 10}
	if n, err := unix.FcntlInt(uintptr(p.r), unix.F_SETPIPE_SZ, maxPipeSize); err == nil {
		p.size = n
	} else if n, err := unix.FcntlInt(uintptr(p.r), unix.F_GETPIPE_SZ, 0); err == nil {
		p.size = n
	}
	return p, nil
}

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// pipePool holds at most max splice pipes, in use or idle. Unlike the pool
// inside Go's runtime, whose pipes stay open until garbage collections
// release them, it has a fixed bound, and a pipe idle for trim is closed.
// A tunnel takes a pipe only while bytes are moving; when none is free it
// copies through a buffer instead.
type pipePool struct {
	max  int
	trim time.Duration

	mu     sync.Mutex
	open   int     // pipes open, in use or idle
	idle   []*pipe // the most recently used last
	armed  bool    // a trim is scheduled
	closed bool
}

// defaultPipeTrim is how long a pipe may stay idle in the pool.
const defaultPipeTrim = 2 * time.Second

func newPipePool(max int, trim time.Duration) *pipePool {
	return &pipePool{max: max, trim: trim}
}

// get returns an empty pipe, or nil when max pipes are in use.
func (p *pipePool) get() *pipe {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		pp := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return pp
	}
	if p.closed || p.open >= p.max {
		p.mu.Unlock()
		return nil
	}
	p.open++
	p.mu.Unlock()
	pp, err := newPipe()
	if err != nil {
		p.mu.Lock()
		p.open--
		p.mu.Unlock()
		return nil
	}
	return pp
}

// put gives pp back. A pipe that may still hold bytes is closed instead.
func (p *pipePool) put(pp *pipe, empty bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !empty || p.closed {
		pp.close()
		p.open--
		return
	}
	pp.idleAt = time.Now()
	p.idle = append(p.idle, pp)
	if !p.armed {
		p.armed = true
		time.AfterFunc(p.trim/2, p.trimIdle)
	}
}

// trimIdle closes the pipes idle for trim or longer. It runs every trim/2
// while pipes are idle, so a pipe is closed at most 1.5 trim after its
// last use.
func (p *pipePool) trimIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	cutoff := time.Now().Add(-p.trim)
	n := 0
	for n < len(p.idle) && !p.idle[n].idleAt.After(cutoff) {
		p.idle[n].close()
		n++
	}
	p.open -= n
	p.idle = append(p.idle[:0:0], p.idle[n:]...)
	p.armed = len(p.idle) > 0 && !p.closed
	if p.armed {
		time.AfterFunc(p.trim/2, p.trimIdle)
	}
}

// close closes the idle pipes; pipes in use are closed when given back.
func (p *pipePool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, pp := range p.idle {
		pp.close()
	}
	p.open -= len(p.idle)
	p.idle = nil
}

// bound returns the most pipes the pool holds.
func (p *pipePool) bound() int { return p.max }

// stats returns the pipes open and, of those, idle.
func (p *pipePool) stats() (open, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open, len(p.idle)
}

// splicer moves bytes from one TCP socket to another through pooled pipes.
type splicer struct {
	pool     *pipePool
	src, dst syscall.RawConn
	off      bool // the kernel refused to splice these sockets
}

// newSplicer returns a splicer from src to dst, or nil when they are not
// both TCP sockets.
func newSplicer(pool *pipePool, dst, src net.Conn) *splicer {
	s, okS := src.(*net.TCPConn)
	d, okD := dst.(*net.TCPConn)
	if pool == nil || !okS || !okD {
		return nil
	}
	rs, errS := s.SyscallConn()
	rd, errD := d.SyscallConn()
	if errS != nil || errD != nil {
		return nil
	}
	return &splicer{pool: pool, src: rs, dst: rd}
}

// burst moves what src has to offer now, and goes on while more arrives,
// through one pooled pipe; dst gets stall for each write to make progress.
// moved is told of every byte delivered. It returns false when it could not
// splice (no free pipe, or the kernel refused), having moved nothing;
// io.EOF at the end of src; errIdle when dst took nothing for stall.
func (s *splicer) burst(dst net.Conn, stall time.Duration, moved func(int64)) (bool, error) {
	if s == nil || s.off {
		return false, nil
	}
	pp := s.pool.get()
	if pp == nil {
		return false, nil
	}
	inPipe := 0
	defer func() { s.pool.put(pp, inPipe == 0) }()
	for first := true; ; first = false {
		n, err := s.spliceIn(pp)
		switch {
		case err == unix.EAGAIN, errors.Is(err, os.ErrDeadlineExceeded):
			return true, nil // nothing more for now
		case first && (err == unix.EINVAL || err == unix.ENOSYS):
			s.off = true
			return false, nil
		case err != nil:
			var errno syscall.Errno
			if errors.As(err, &errno) {
				err = os.NewSyscallError("splice", err)
			}
			return true, err
		case n == 0:
			return true, io.EOF
		}
		inPipe = n
		for inPipe > 0 {
			if err := dst.SetWriteDeadline(time.Now().Add(stall)); err != nil {
				return true, err
			}
			m, err := s.spliceOut(pp, inPipe)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return true, errIdle
			}
			if err != nil {
				return true, err
			}
			inPipe -= m
			moved(int64(m))
		}
	}
}

// spliceIn moves up to a pipeful from the source socket into pp without
// waiting.
func (s *splicer) spliceIn(pp *pipe) (int, error) {
	var n int64
	var serr error
	err := s.src.Read(func(fd uintptr) bool {
		for {
			n, serr = unix.Splice(int(fd), nil, pp.w, nil, pp.size, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if serr != unix.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return int(n), serr
}

// spliceOut moves up to n bytes from pp to the destination socket, waiting
// (until the write deadline) for it to take some.
func (s *splicer) spliceOut(pp *pipe, n int) (int, error) {
	var m int64
	var serr error
	err := s.dst.Write(func(fd uintptr) bool {
		for {
			m, serr = unix.Splice(pp.r, nil, int(fd), nil, n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	})
	if err == nil && serr == nil && m == 0 {
		err = io.ErrNoProgress
	}
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, os.NewSyscallError("splice", serr)
	}
	return int(m), nil
}

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandgate/sandgate/audit"
)

// tunnel relays bytes between a client and an upstream connection after a
// CONNECT or SOCKS handshake.
//
// Each direction waits for its source to become readable while holding
// nothing (no pipe, no buffer), so an idle tunnel costs two parked goroutines
// and this struct. Then it moves what there is: between two TCP sockets on
// Linux with splice(2) through a pipe of the server's bounded pool, given
// back as soon as the burst ends; otherwise, or when every pipe is in use,
// through a pooled buffer.
type tunnel struct {
	s        *Server
	client   net.Conn  // raw client connection (a *net.TCPConn when possible)
	upstream net.Conn  // connection from the gate
	closer   io.Closer // closes the client and gives back its MaxConns slot

	idle time.Duration

	last     atomic.Int64 // UnixNano of the last byte moved either way
	up, down atomic.Int64 // bytes client→upstream, upstream→client
	finished atomic.Int32 // directions done

	closeOnce sync.Once
	ev        audit.Event
	start     time.Time
}

// errIdle ends a tunnel that moved no byte for IdleTimeout.
var errIdle = errors.New("tunnel idle")

// copyBufs are the buffers of tunnels that cannot splice.
var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// startTunnel relays between client and upstream in two new goroutines and
// records ev (with byte counts and duration) when both directions end.
// initial holds bytes the client sent before the tunnel began (buffered by
// the HTTP reader); they are written upstream first. It returns without
// waiting.
func (s *Server) startTunnel(client net.Conn, closer io.Closer, upstream net.Conn, initial []byte, ev audit.Event, start time.Time) {
	t := &tunnel{
		s:        s,
		client:   client,
		upstream: upstream,
		closer:   closer,
		idle:     s.lim.IdleTimeout,
		ev:       ev,
		start:    start,
	}
	t.last.Store(time.Now().UnixNano())
	if !s.track(t, false) {
		t.close()
		t.ev.Reason = audit.ReasonShutdown
		t.ev.Text = "the proxy is shutting down"
		s.record(t.ev, start)
		return
	}
	client.SetDeadline(time.Time{})
	if len(initial) > 0 {
		upstream.SetWriteDeadline(time.Now().Add(t.idle))
		n, err := upstream.Write(initial)
		t.up.Add(int64(n))
		upstream.SetWriteDeadline(time.Time{})
		if err != nil {
			t.close()
			t.finished.Store(1)
			t.finish()
			return
		}
	}
	go t.run(upstream, client, &t.up)
	go t.run(client, upstream, &t.down)
}

// Close closes both connections; Shutdown uses it.
func (t *tunnel) Close() error {
	t.close()
	return nil
}

func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		t.closer.Close()
		t.upstream.Close()
	})
}

// run copies src to dst until EOF, an error, or idleness.
func (t *tunnel) run(dst, src net.Conn, count *atomic.Int64) {
	defer func() {
		if r := recover(); r != nil {
			t.s.logf("proxy: tunnel %s:%d: internal error: %v", t.ev.Host, t.ev.Port, r)
			t.close()
		}
		t.finish()
	}()
	err := t.pump(dst, src, count)
	t.end(dst, err)
}

// end reacts to one direction ending: at EOF of the source the destination
// is half-closed so its peer sees EOF too; on an error or idleness the whole
// tunnel is closed.
func (t *tunnel) end(dst net.Conn, err error) {
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return
		}
	}
	t.close()
}

// finish runs once per direction; the second records the event.
func (t *tunnel) finish() {
	if t.finished.Add(1) != 2 {
		return
	}
	t.close()
	t.s.untrack(t)
	t.ev.BytesUp = t.up.Load()
	t.ev.BytesDown = t.down.Load()
	t.s.record(t.ev, t.start)
}

// pump moves bytes from src to dst. It returns nil at EOF of src.
//
// Between bursts it parks in waitReadable, which holds no pipe and no
// buffer, until data arrives or the tunnel has been idle (both ways) for
// IdleTimeout. A destination that takes nothing for IdleTimeout ends the
// tunnel too.
func (t *tunnel) pump(dst, src net.Conn, count *atomic.Int64) error {
	sp := newSplicer(t.s.pipes, dst, src)
	moved := func(n int64) {
		count.Add(n)
		t.last.Store(time.Now().UnixNano())
	}
	for {
		deadline := time.Unix(0, t.last.Load()).Add(t.idle)
		if !time.Now().Before(deadline) {
			return errIdle
		}
		if err := src.SetReadDeadline(deadline); err != nil {
			return err
		}
		if err := waitReadable(src); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // re-check: the other direction may have moved bytes
			}
			return err
		}
		spliced, err := sp.burst(dst, t.idle, moved)
		if !spliced {
			err = t.copyBurst(dst, src, moved)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// copyBurst moves one read's worth from src to dst through a pooled buffer.
func (t *tunnel) copyBurst(dst, src net.Conn, moved func(int64)) error {
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	n, rerr := src.Read(buf[:])
	if n > 0 {
		if err := dst.SetWriteDeadline(time.Now().Add(t.idle)); err != nil {
			return err
		}
		m, werr := dst.Write(buf[:n])
		if m > 0 {
			moved(int64(m))
		}
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			// The destination took nothing for IdleTimeout; bytes in
			// flight may be lost, so the tunnel must end.
			return errIdle
		}
		if werr != nil {
			return werr
		}
	}
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		return nil // nothing after all; the loop checks idleness
	}
	return rerr
}

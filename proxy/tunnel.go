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
// Each direction runs io.Copy between the raw connections, so two
// *net.TCPConn move bytes with splice(2) on Linux. To notice idleness without
// a copy loop of our own, each io.Copy runs under a short read deadline (the
// slice); between slices the goroutine waits for the source to become
// readable without holding a splice pipe or a buffer, so an idle tunnel costs
// two parked goroutines and this struct.
type tunnel struct {
	s        *Server
	client   net.Conn  // raw client connection (a *net.TCPConn when possible)
	upstream net.Conn  // connection from the gate
	closer   io.Closer // closes the client and gives back its MaxConns slot

	idle  time.Duration
	slice time.Duration

	last     atomic.Int64 // UnixNano of the last byte moved either way
	up, down atomic.Int64 // bytes client→upstream, upstream→client
	finished atomic.Int32 // directions done

	closeOnce sync.Once
	ev        audit.Event
	start     time.Time
}

// errIdle ends a tunnel that moved no byte for IdleTimeout.
var errIdle = errors.New("tunnel idle")

// sliceFor is how long one io.Copy may run before it returns, so that the
// tunnel can check for idleness and give back its splice pipe. Go's splice
// holds a pipe (two descriptors) for as long as io.Copy waits for data, so a
// short slice keeps pipes from piling up when many tunnels go quiet at once;
// restarting io.Copy this often costs a few microseconds.
func sliceFor(idle time.Duration) time.Duration {
	const maxSlice = 25 * time.Millisecond
	d := idle / 4
	if d > maxSlice {
		d = maxSlice
	}
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}

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
		slice:    sliceFor(s.lim.IdleTimeout),
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
// While bytes flow, io.Copy is restarted every slice without further ado.
// Once a whole slice passes with nothing to move, pump parks in waitReadable,
// which holds no pipe and no buffer, until data arrives or the tunnel has
// been idle (both ways) for IdleTimeout.
func (t *tunnel) pump(dst, src net.Conn, count *atomic.Int64) error {
	// Start quiet: wait for the first byte before splicing, so a tunnel
	// that opens and then idles never takes a splice pipe (Go keeps released
	// pipes pooled until a collection; thousands of fresh idle tunnels would
	// otherwise pin two descriptors each).
	quiet := true // the last slice moved nothing
	for {
		if quiet {
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
		}
		now := time.Now()
		if err := src.SetReadDeadline(now.Add(t.slice)); err != nil {
			return err
		}
		stall := now.Add(t.slice + t.idle)
		dst.SetWriteDeadline(stall)
		n, err := copyOnce(dst, src)
		if n > 0 {
			count.Add(n)
			t.last.Store(time.Now().UnixNano())
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if !time.Now().Before(stall) {
			// The destination took nothing for IdleTimeout; bytes in
			// flight may be lost, so the tunnel must end.
			return errIdle
		}
		quiet = n == 0
	}
}

// copyOnce is io.Copy(dst, src). Between two TCP connections it calls
// (*net.TCPConn).ReadFrom directly, which is where io.Copy ends up too (and
// where Go splices), but with four fewer frames on the goroutine's stack;
// that keeps an idle tunnel's two goroutines on small stacks.
func copyOnce(dst, src net.Conn) (int64, error) {
	if d, ok := dst.(*net.TCPConn); ok {
		return d.ReadFrom(src)
	}
	return io.Copy(dst, src)
}

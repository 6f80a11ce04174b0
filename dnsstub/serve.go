package dnsstub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Backoff after a read or accept error that is not the socket closing.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// ServeUDP answers queries on pc until ctx ends, then closes pc and returns
// nil once every worker has stopped. It returns an error only when pc is
// closed by someone else. Each of Config.UDPWorkers goroutines reads one
// datagram, answers it and reads the next; a datagram larger than 4096
// bytes is answered FORMERR.
func (s *Server) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	errs := make([]error, s.cfg.UDPWorkers)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = s.udpWorker(ctx, pc) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

// udpWorker is one reading loop of ServeUDP.
func (s *Server) udpWorker(ctx context.Context, pc net.PacketConn) error {
	buf := make([]byte, maxQuery+1)
	backoff := minBackoff
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("dns stub: udp: %w", err)
			}
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		// n > maxQuery means the datagram was oversized (and possibly cut
		// by the kernel): respond sees it as too large and says FORMERR.
		resp := s.respond(buf[:n], true, source{transport: "udp", client: addr.String()})
		if resp != nil {
			_, _ = pc.WriteTo(resp, addr) // a client that went away is not our problem
		}
	}
}

// ServeTCP answers queries on connections accepted from l until ctx ends,
// then closes l and every connection and returns nil once they have all
// stopped. It returns an error only when l is closed by someone else.
// Connections beyond Config.MaxTCPConns are closed at once; each message
// (two-byte length and body) must arrive within Config.TCPIdleTimeout, and a
// length under 12 or over 4096 ends the connection.
func (s *Server) ServeTCP(ctx context.Context, l net.Listener) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	closeAll := func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	slots := make(chan struct{}, s.cfg.MaxTCPConns)
	backoff := minBackoff
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				closeAll()
				wg.Wait()
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("dns stub: tcp: %w", err)
			}
			if sleep(ctx, backoff) {
				backoff = min(2*backoff, maxBackoff)
			}
			continue
		}
		backoff = minBackoff
		select {
		case slots <- struct{}{}:
		default:
			c.Close() // full: the client retries or falls back to UDP
			continue
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			<-slots
			continue
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
				<-slots
			}()
			s.serveConn(c)
		})
	}
}

// serveConn answers the queries of one TCP connection in order.
func (s *Server) serveConn(c net.Conn) {
	from := source{transport: "tcp", client: c.RemoteAddr().String()}
	buf := make([]byte, 2+maxQuery)
	for {
		if err := c.SetDeadline(time.Now().Add(s.cfg.TCPIdleTimeout)); err != nil {
			return
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return // closed, idle too long, or half a length
		}
		n := int(binary.BigEndian.Uint16(buf[:2]))
		if n < 12 || n > maxQuery {
			s.stats.queries.Add(1)
			s.report(Refusal{Transport: from.transport, Client: from.client, Reason: ReasonMalformed})
			return
		}
		if _, err := io.ReadFull(c, buf[2:2+n]); err != nil {
			return
		}
		resp := s.respond(buf[2:2+n], false, from)
		if resp == nil {
			return
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The target speaks a tiny protocol chosen by the first byte a client sends:
//
//	'B' + 8-byte big-endian length L + L bytes: the target reads and discards
//	    the L bytes 256 KiB at a time, then answers with the same 8-byte L
//	    (the bulk sink).
//	'D' like 'B', but the sink is io.Copy to io.Discard (8 KiB reads).
//	'E' + 63 more bytes: the target answers with the same 64 bytes (echo)
//	    and closes the connection.
//	'H': the target answers 'H' and then echoes whatever arrives until the
//	    client closes (an idle tunnel that can be pinged).
const (
	opBulk   = 'B'
	opBulkD  = 'D'
	opEcho   = 'E'
	opHold   = 'H'
	echoSize = 64
	sinkBuf  = 256 << 10
)

// target is the loopback server every measurement talks to, directly or
// through the proxy.
type target struct {
	ln       net.Listener
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
	acceptEr atomic.Int64 // accept errors (fd limits show up here)
	lastEr   atomic.Value // last accept error text
}

func startTarget() (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &target{ln: ln, conns: make(map[net.Conn]struct{})}
	t.wg.Add(1)
	go t.serve()
	return t, nil
}

func (t *target) addr() string { return t.ln.Addr().String() }

func (t *target) port() int { return t.ln.Addr().(*net.TCPAddr).Port }

func (t *target) serve() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: note it, back off briefly, go on.
			t.acceptEr.Add(1)
			t.lastEr.Store(err.Error())
			time.Sleep(5 * time.Millisecond)
			continue
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.handle(c)
	}
}

func (t *target) handle(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
		c.Close()
	}()
	var op [1]byte
	if _, err := io.ReadFull(c, op[:]); err != nil {
		return
	}
	switch op[0] {
	case opBulk, opBulkD:
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		want := int64(binary.BigEndian.Uint64(hdr[:]))
		if op[0] == opBulkD {
			if n, err := io.Copy(io.Discard, io.LimitReader(c, want)); err != nil || n != want {
				return
			}
		} else {
			buf := make([]byte, sinkBuf)
			var got int64
			for got < want {
				n, err := c.Read(buf[:min(int64(len(buf)), want-got)])
				got += int64(n)
				if err != nil {
					return
				}
			}
		}
		if _, err := c.Write(hdr[:]); err != nil {
			return
		}
	case opEcho:
		var msg [echoSize]byte
		msg[0] = opEcho
		if _, err := io.ReadFull(c, msg[1:]); err != nil {
			return
		}
		// Answer and close first, as an HTTP/1.1 server with "Connection:
		// close" does: TIME_WAIT then stays on the server side and the
		// clients' ephemeral ports do not run out.
		_, _ = c.Write(msg[:])
		return
	case opHold:
		if _, err := c.Write(op[:]); err != nil {
			return
		}
		var buf [64]byte
		for {
			n, err := c.Read(buf[:])
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	default:
		return
	}
	// Wait for the client to close.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.Copy(io.Discard, c)
}

// close stops the target and closes every connection it holds.
func (t *target) close() {
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.ln.Close()
	t.wg.Wait()
}

// acceptErrors reports the accept errors seen, with the last one's text.
func (t *target) acceptErrors() (int64, string) {
	s, _ := t.lastEr.Load().(string)
	return t.acceptEr.Load(), s
}

var echoMsg = func() []byte {
	m := bytes.Repeat([]byte("0123456789abcdef"), echoSize/16)
	m[0] = opEcho
	return m
}()

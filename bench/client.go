//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// dialer opens connections to the target, directly (proxy == "") or as an
// HTTP CONNECT tunnel through the proxy at proxy (host:port).
type dialer struct {
	proxy   string
	target  string
	timeout time.Duration
}

func (d dialer) via() string {
	if d.proxy == "" {
		return "direct"
	}
	return "proxy " + d.proxy
}

// dial returns a connection whose bytes reach the target unchanged.
func (d dialer) dial() (*net.TCPConn, error) {
	addr := d.target
	if d.proxy != "" {
		addr = d.proxy
	}
	nd := net.Dialer{Timeout: d.timeout}
	c, err := nd.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	if d.proxy == "" {
		return tc, nil
	}
	if err := connectTunnel(tc, d.target, d.timeout); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

// connectTunnel sends CONNECT target and reads the proxy's answer. The target
// never speaks first, so any byte after the answer's head is an error.
func connectTunnel(c net.Conn, target string, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("sending CONNECT: %w", err)
	}
	var buf [4096]byte
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
			head := string(buf[:i])
			status, _, _ := strings.Cut(head, "\r\n")
			if !strings.HasPrefix(status, "HTTP/1.") || len(status) < 12 || status[9:12] != "200" {
				detail := ""
				for _, h := range strings.Split(head, "\r\n")[1:] {
					if strings.HasPrefix(strings.ToLower(h), "x-proxy-error:") {
						detail = " (" + strings.TrimSpace(h) + ")"
					}
				}
				return &refusedError{target: target, status: status, detail: detail}
			}
			if i+4 != n {
				return fmt.Errorf("proxy sent %d unexpected bytes after its CONNECT answer", n-i-4)
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("proxy closed the connection before answering CONNECT (%d bytes read)", n)
			}
			return fmt.Errorf("reading CONNECT answer: %w", err)
		}
		if n == len(buf) {
			return errors.New("proxy's CONNECT answer head exceeds 4 KiB")
		}
	}
}

// refusedError is a proxy's answer other than 200 to CONNECT.
type refusedError struct {
	target, status, detail string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("proxy refused CONNECT %s: %q%s", e.target, e.status, e.detail)
}

// busy reports whether the proxy said it has too many connections (503).
func (e *refusedError) busy() bool { return len(e.status) >= 12 && e.status[9:12] == "503" }

// result is one measurement; the client helper prints it as JSON.
type result struct {
	Test     string  `json:"test"`
	Via      string  `json:"via"`
	Tunnels  int     `json:"tunnels,omitempty"`
	Bytes    int64   `json:"bytes"`
	Ops      int64   `json:"ops"`
	Seconds  float64 `json:"seconds"`
	Errors   int64   `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
	Limit    string  `json:"limit,omitempty"`
	Source   string  `json:"source,omitempty"`
	CPU      float64 `json:"cpu_s,omitempty"`       // CPU seconds of the measuring process(es) other than the proxy
	ProxyCPU float64 `json:"proxy_cpu_s,omitempty"` // CPU seconds of the proxy, when it runs in its own process
}

// ok reports whether the measurement completed without error.
func (r result) ok() bool { return r.Errors == 0 && r.Seconds > 0 }

func (r *result) fail(err error) {
	if err == nil {
		return
	}
	r.Errors++
	if r.FirstErr == "" {
		r.FirstErr = err.Error()
	}
	if l := limitOf(err); l != "" && r.Limit == "" {
		r.Limit = l
	}
}

// source sends bulk data. It uses sendfile(2) from a memfd (the kernel's
// zero-copy path for *net.TCPConn.ReadFrom) and falls back to writing a 1 MiB
// in-memory buffer when memfd is unavailable.
type source struct {
	f    *os.File
	size int64
	buf  []byte
}

const sourceSize = 16 << 20

func newSource(kind string) *source {
	fd, err := unix.MemfdCreate("sandgate-bench", unix.MFD_CLOEXEC)
	if kind == "write" {
		err = errors.New("write requested")
	}
	if err == nil {
		f := os.NewFile(uintptr(fd), "memfd:sandgate-bench")
		chunk := bytes.Repeat([]byte("sandgate-bench-0"), (1<<20)/16)
		ok := true
		for i := 0; i < sourceSize/len(chunk); i++ {
			if _, err := f.Write(chunk); err != nil {
				ok = false
				break
			}
		}
		if ok {
			return &source{f: f, size: sourceSize}
		}
		f.Close()
	}
	return &source{buf: bytes.Repeat([]byte("sandgate-bench-0"), (1<<20)/16)}
}

func (s *source) kind() string {
	if s.f != nil {
		return "sendfile(memfd)"
	}
	return "write(1MiB buffer)"
}

func (s *source) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// send writes n bytes to c and returns how many went out.
func (s *source) send(c *net.TCPConn, n int64) (int64, error) {
	var sent int64
	for sent < n {
		k := n - sent
		if s.f != nil {
			k = min(k, s.size)
			if _, err := s.f.Seek(0, io.SeekStart); err != nil {
				return sent, err
			}
			m, err := c.ReadFrom(io.LimitReader(s.f, k))
			sent += m
			if err != nil {
				return sent, err
			}
			if m < k {
				return sent, io.ErrShortWrite
			}
			continue
		}
		m, err := c.Write(s.buf[:min(k, int64(len(s.buf)))])
		sent += int64(m)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// bulk moves total bytes split across tunnels connections to the target's
// sink and returns the throughput. The clock starts once every tunnel is
// open and stops when the last acknowledgement arrives (the sink answers
// only after reading everything, so no half-close support is needed).
func bulk(d dialer, tunnels int, total int64, timeout time.Duration, srcs []*source, sink string) result {
	r := result{Test: fmt.Sprintf("bulk%d", tunnels), Via: d.via(), Tunnels: tunnels, Source: srcs[0].kind()}
	per := total / int64(tunnels)
	conns := make([]*net.TCPConn, 0, tunnels)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < tunnels; i++ {
		c, err := d.dial()
		if err != nil {
			r.fail(fmt.Errorf("opening tunnel %d: %w", i+1, err))
			return r
		}
		conns = append(conns, c)
		var hdr [9]byte
		hdr[0] = opBulk
		if sink == "discard" {
			hdr[0] = opBulkD
		}
		binary.BigEndian.PutUint64(hdr[1:], uint64(per))
		if _, err := c.Write(hdr[:]); err != nil {
			r.fail(err)
			return r
		}
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		moved atomic.Int64
		last  time.Time
	)
	for i, c := range conns {
		_ = c.SetDeadline(deadline)
		wg.Add(1)
		go func(c *net.TCPConn, src *source) {
			defer wg.Done()
			n, err := src.send(c, per)
			var ack [8]byte
			if err == nil {
				_, err = io.ReadFull(c, ack[:])
			}
			end := time.Now()
			if err == nil && int64(binary.BigEndian.Uint64(ack[:])) != per {
				err = errors.New("sink acknowledged a different length")
			}
			moved.Add(n)
			mu.Lock()
			defer mu.Unlock()
			if end.After(last) {
				last = end
			}
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = fmt.Errorf("bulk measurement over its %v limit after %d of %d bytes on one tunnel", timeout, n, per)
				}
				r.fail(err)
			}
		}(c, srcs[i%len(srcs)])
	}
	wg.Wait()
	r.Bytes = moved.Load()
	r.Seconds = last.Sub(start).Seconds()
	return r
}

// fresh runs clients concurrent loops of connect (+ CONNECT), send 64 bytes,
// read the 64-byte echo and the target's close, close, for about dur, and
// counts completed ones.
// A loop stops early after 1000 errors in total.
func fresh(d dialer, clients int, dur time.Duration) result {
	r := result{Test: "fresh", Via: d.via(), Tunnels: clients}
	var (
		ops    atomic.Int64
		errs   atomic.Int64
		mu     sync.Mutex
		wg     sync.WaitGroup
		stopAt = time.Now().Add(dur)
	)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, echoSize)
			for time.Now().Before(stopAt) && errs.Load() < 1000 {
				if err := freshOnce(d, buf); err != nil {
					errs.Add(1)
					mu.Lock()
					r.fail(err)
					mu.Unlock()
					continue
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	r.Ops = ops.Load()
	return r
}

func freshOnce(d dialer, buf []byte) error {
	c, err := d.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d.timeout))
	if _, err := c.Write(echoMsg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("reading echo: %w", err)
	}
	if !bytes.Equal(buf, echoMsg) {
		return errors.New("echo differs from the request")
	}
	// The target closes after answering; wait for that EOF (through the
	// proxy it arrives only if the tunnel passes the close on).
	if n, err := c.Read(buf[:1]); n != 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("waiting for the target's close: got %d bytes, %v", n, err)
	}
	return nil
}

// clientChildMain is the `_client` helper: one measurement against -target,
// directly or through the HTTP proxy named by -proxy (a URL, or "env" for
// $HTTP_PROXY / $http_proxy as `sandgate run` sets them). NO_PROXY is
// ignored on purpose: inside the sandbox 127.0.0.1 is the sandbox's own
// loopback, and the target lives on the host's, reachable only through the
// proxy. It prints one JSON result line on stdout.
func clientChildMain(args []string) int {
	fs := flag.NewFlagSet("_client", flag.ContinueOnError)
	targetAddr := fs.String("target", "", "target host:port")
	proxyArg := fs.String("proxy", "", `"" for direct, "env" for $HTTP_PROXY, or http://host:port`)
	test := fs.String("test", "bulk", "bulk or fresh")
	tunnels := fs.Int("tunnels", 1, "bulk: tunnels; fresh: concurrent clients")
	var total byteSize = 1 << 30
	fs.Var(&total, "bytes", "bulk: bytes in total")
	dur := fs.Duration("time", time.Second, "fresh: duration; bulk: time limit")
	sender := fs.String("sender", "write", "bulk: write or sendfile")
	sink := fs.String("sink", "256k", "bulk: 256k or discard")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	d := dialer{target: *targetAddr, timeout: 10 * time.Second}
	if *proxyArg != "" {
		var err error
		if *proxyArg == "env" {
			d.proxy, err = proxyFromEnv()
		} else {
			d.proxy, err = proxyHost(*proxyArg)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench _client: %v\n", err)
			return 2
		}
	}
	var r result
	switch *test {
	case "bulk":
		srcs := make([]*source, *tunnels)
		for i := range srcs {
			srcs[i] = newSource(*sender)
			defer srcs[i].close()
		}
		r = bulk(d, *tunnels, int64(total), *dur, srcs, *sink)
	case "fresh":
		r = fresh(d, *tunnels, *dur)
	default:
		fmt.Fprintf(os.Stderr, "bench _client: unknown test %q\n", *test)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 1
	}
	return 0
}

// proxyFromEnv returns host:port of $HTTP_PROXY (or $http_proxy), as
// `sandgate run` sets it.
func proxyFromEnv() (string, error) {
	raw := os.Getenv("HTTP_PROXY")
	if raw == "" {
		raw = os.Getenv("http_proxy")
	}
	if raw == "" {
		return "", errors.New("neither HTTP_PROXY nor http_proxy is set")
	}
	return proxyHost(raw)
}

// proxyHost returns host:port of an http://host:port proxy URL.
func proxyHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("proxy %q is not an http://host:port URL", raw)
	}
	return u.Host, nil
}

// runContext is a bounded context for helper processes.
func runContext(limit time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), limit)
}

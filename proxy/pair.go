package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Pair is a Server serving its HTTP and SOCKS5 listeners together, as
// `sandgate proxy` and every sandbox do: the two serve loops start at once,
// the first that stops on its own ends the pair, and one Shutdown stops
// both within a deadline.
type Pair struct {
	s   *Server
	lns []net.Listener
	wg  sync.WaitGroup

	mu       sync.Mutex
	stopping bool        // Shutdown was called: stops are expected
	err      *ServeError // the first unexpected stop
	failed   chan struct{}
}

// ServeError says which listener of a Pair stopped serving on its own, and
// why.
type ServeError struct {
	Proto string // "HTTP" or "SOCKS5"
	Err   error  // what the serve loop returned
}

// errStoppedUnexpectedly stands for a serve loop that ended without error
// although nobody stopped it.
var errStoppedUnexpectedly = errors.New("stopped unexpectedly")

// Error returns "HTTP proxy: ..." or "SOCKS5 proxy: ...".
func (e *ServeError) Error() string { return e.Proto + " proxy: " + e.Err.Error() }

// Unwrap returns what the serve loop returned.
func (e *ServeError) Unwrap() error { return e.Err }

// ServePair serves HTTP proxy clients on httpLn and SOCKS5 clients on
// socksLn (either may be nil: that protocol is not served) until Shutdown.
// The Pair owns the listeners from now on. When one serve loop stops on
// its own (an accept error, a listener closed by someone else), Failed is
// closed, Err says why and the other listener is closed too: connections
// already open are served on.
func (s *Server) ServePair(httpLn, socksLn net.Listener) *Pair {
	p := &Pair{s: s, failed: make(chan struct{})}
	if httpLn != nil {
		p.serve("HTTP", httpLn, s.ServeHTTP)
	}
	if socksLn != nil {
		p.serve("SOCKS5", socksLn, s.ServeSOCKS)
	}
	return p
}

func (p *Pair) serve(proto string, ln net.Listener, loop func(net.Listener) error) {
	p.lns = append(p.lns, ln)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := loop(ln)
		if err == nil {
			err = errStoppedUnexpectedly
		}
		p.stopped(&ServeError{Proto: proto, Err: err})
	}()
}

// stopped records the end of a serve loop; only the first one nobody
// asked for counts, and it closes the other listener.
func (p *Pair) stopped(e *ServeError) {
	p.mu.Lock()
	if p.stopping || p.err != nil {
		p.mu.Unlock()
		return
	}
	p.err = e
	close(p.failed)
	p.mu.Unlock()
	p.closeListeners()
}

// Failed is closed when a serve loop stopped before Shutdown was called.
func (p *Pair) Failed() <-chan struct{} { return p.failed }

// Err returns the first unexpected stop (a *ServeError), nil when there was
// none.
func (p *Pair) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return nil
	}
	return p.err
}

func (p *Pair) closeListeners() {
	for _, ln := range p.lns {
		ln.Close()
	}
}

// Shutdown stops accepting, lets open connections finish for at most grace,
// closes what is left and returns once both serve loops have returned. The
// error is the Server's Shutdown error (connections that had to be closed).
func (p *Pair) Shutdown(grace time.Duration) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := p.s.Shutdown(ctx)
	p.closeListeners()
	p.wg.Wait()
	return err
}

// Package tlspeek learns which host a client wants from the first bytes it
// sends on a connection, before anything is forwarded: the server name
// (SNI) and ALPN protocols of a TLS ClientHello, or the Host of an HTTP/1.x
// request head. It is pure (no system calls) and works on any io.Reader.
//
// Nothing is consumed for good: every Read function returns, besides what
// it learnt, every byte it read, which the caller must replay to the
// upstream before relaying the rest of the connection. Reads are bounded by
// a byte limit given by the caller (the caller bounds time with a read
// deadline), and a ClientHello may arrive split over any number of TLS
// records and reads.
//
// The parsers only read what they need and refuse malformed input (lengths
// that disagree, an extension given twice, a server name with bytes that
// cannot be in a host name) with an error wrapping ErrMalformed; input that
// ends before the message does gives ErrShort, and a message longer than
// the limit ErrTooLarge.
package tlspeek

import (
	"errors"
	"fmt"
	"io"
)

// Errors the parsers return (wrapped, with detail).
var (
	// ErrShort means the input ended before the message did.
	ErrShort = errors.New("tlspeek: message incomplete")
	// ErrMalformed means the input is not a well-formed message.
	ErrMalformed = errors.New("tlspeek: malformed message")
	// ErrTooLarge means the message is longer than the caller's limit.
	ErrTooLarge = errors.New("tlspeek: message larger than the limit")
	// ErrNotTLS means the first byte is not that of a TLS handshake record.
	ErrNotTLS = errors.New("tlspeek: not a TLS handshake")
	// ErrNotHTTP means the input does not start like an HTTP/1.x request.
	ErrNotHTTP = errors.New("tlspeek: not an HTTP/1.x request")
)

// DefaultMax is a limit that fits every ClientHello seen in practice
// (including post-quantum key shares, about 1.8 KiB, and large session
// tickets) and every reasonable request head.
const DefaultMax = 16 << 10

// malformed returns an error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// readUntil reads from r into a growing buffer, calling parse on all that
// was read after each read, until parse returns anything but ErrShort, the
// input ends, or max bytes have been read. It returns parse's last error and
// every byte read. It never reads more than max bytes.
func readUntil(r io.Reader, max int, parse func([]byte) error) ([]byte, error) {
	if max <= 0 {
		max = DefaultMax
	}
	buf := make([]byte, 0, min(max, 2048))
	for {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			err := parse(buf)
			if !errors.Is(err, ErrShort) {
				return buf, err
			}
			if len(buf) >= max {
				return buf, fmt.Errorf("%w: %d bytes read without the message ending", ErrTooLarge, len(buf))
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				if len(buf) == 0 {
					return buf, fmt.Errorf("%w: the connection ended before any byte", ErrShort)
				}
				return buf, fmt.Errorf("%w: the connection ended after %d bytes", ErrShort, len(buf))
			}
			return buf, fmt.Errorf("tlspeek: reading after %d bytes: %w", len(buf), rerr)
		}
	}
}

// Kind says what Peek found.
type Kind int

// The kinds of first bytes Peek tells apart.
const (
	KindUnknown Kind = iota // neither TLS nor HTTP/1.x
	KindTLS                 // a TLS ClientHello
	KindHTTP                // an HTTP/1.x request head
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindTLS:
		return "TLS"
	case KindHTTP:
		return "HTTP"
	}
	return "unknown"
}

// Peeked is what Peek learnt.
type Peeked struct {
	Kind Kind
	// Name is the host the client asked for: the ClientHello's server
	// name or the request's host (without a port); "" when it named none.
	Name string
	// ALPN lists the ClientHello's application protocols, in order.
	ALPN []string
}

// Peek reads the first bytes of a connection from r, at most max (0 means
// DefaultMax), and learns the host the client wants when they are a TLS
// ClientHello (first byte 0x16) or an HTTP/1.x request head (first byte an
// upper-case letter). It returns every byte read, also on error. For any
// other first byte it returns KindUnknown with ErrNotTLS after one read.
func Peek(r io.Reader, max int) (Peeked, []byte, error) {
	var (
		kind  Kind
		hello ClientHello
		req   Request
	)
	read, err := readUntil(r, max, func(b []byte) error {
		switch {
		case b[0] == recordHandshake:
			kind = KindTLS
			var err error
			hello, err = ParseClientHello(b)
			return err
		case b[0] >= 'A' && b[0] <= 'Z':
			kind = KindHTTP
			var err error
			req, err = ParseRequest(b)
			return err
		}
		return fmt.Errorf("%w (first byte %#02x)", ErrNotTLS, b[0])
	})
	switch kind {
	case KindTLS:
		return Peeked{Kind: kind, Name: hello.ServerName, ALPN: hello.ALPN}, read, err
	case KindHTTP:
		return Peeked{Kind: kind, Name: req.Host}, read, err
	}
	return Peeked{}, read, err
}

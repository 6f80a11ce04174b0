package tlspeek

import (
	"fmt"
	"io"
)

// TLS numbers (RFC 8446, RFC 6066, RFC 7301).
const (
	recordHandshake    = 22      // ContentType handshake
	handshakeHello     = 1       // HandshakeType client_hello
	maxRecordPayload   = 1 << 14 // a plaintext record's fragment, at most 2^14 bytes
	extServerName      = 0
	extALPN            = 16
	serverNameHostName = 0
	maxSessionID       = 32
	recordHeaderLen    = 5
	handshakeHeaderLen = 4
)

// ClientHello is what the parser takes from a ClientHello.
type ClientHello struct {
	// ServerName is the host_name of the server_name extension as sent
	// (ASCII; "" when the extension is absent, as for a connection to an
	// IP address).
	ServerName string
	// ALPN lists the protocols of the application_layer_protocol_negotiation
	// extension, in the client's order (nil when absent).
	ALPN []string
}

// ReadClientHello reads TLS records from r until a whole ClientHello has
// arrived, at most max bytes (0 means DefaultMax), and returns it with every
// byte read (also on error: they belong to the connection and must be
// replayed).
func ReadClientHello(r io.Reader, max int) (ClientHello, []byte, error) {
	var hello ClientHello
	read, err := readUntil(r, max, func(b []byte) error {
		var err error
		hello, err = ParseClientHello(b)
		return err
	})
	return hello, read, err
}

// ParseClientHello parses the ClientHello at the start of data, which holds
// TLS records as a client sends them (the handshake message may span many
// records). Bytes after the ClientHello are ignored. It returns an error
// wrapping ErrShort when data ends before the ClientHello does, ErrNotTLS
// when data does not start with a handshake record, and ErrMalformed for
// anything else wrong.
func ParseClientHello(data []byte) (ClientHello, error) {
	msg, err := handshakeMessage(data)
	if err != nil {
		return ClientHello{}, err
	}
	return parseHelloBody(msg)
}

// handshakeMessage joins the fragments of the first handshake message from
// the records at the start of data and returns the message's body, checked
// to be a ClientHello.
func handshakeMessage(data []byte) ([]byte, error) {
	var (
		msg  []byte // the handshake bytes gathered so far
		want = -1   // the body length, once the header is in
	)
	for first := true; ; first = false {
		if len(data) == 0 {
			return nil, fmt.Errorf("%w: %d handshake bytes of a ClientHello gathered", ErrShort, len(msg))
		}
		if data[0] != recordHandshake {
			if first {
				return nil, fmt.Errorf("%w (first byte %#02x)", ErrNotTLS, data[0])
			}
			return nil, malformed("a record of type %d inside the ClientHello", data[0])
		}
		if len(data) < recordHeaderLen {
			return nil, fmt.Errorf("%w: record header", ErrShort)
		}
		if data[1] != 3 {
			return nil, malformed("record version %d.%d", data[1], data[2])
		}
		n := int(data[3])<<8 | int(data[4])
		if n == 0 || n > maxRecordPayload {
			return nil, malformed("record length %d", n)
		}
		data = data[recordHeaderLen:]
		if len(data) < n {
			// Take what there is: the header may already say the
			// message cannot fit.
			n = len(data)
		}
		msg = append(msg, data[:n]...)
		data = data[n:]
		if want < 0 && len(msg) >= handshakeHeaderLen {
			if msg[0] != handshakeHello {
				return nil, malformed("handshake message type %d, not a ClientHello", msg[0])
			}
			want = int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		}
		if want >= 0 && len(msg) >= handshakeHeaderLen+want {
			return msg[handshakeHeaderLen : handshakeHeaderLen+want], nil
		}
	}
}

// parseHelloBody parses a ClientHello's body (after the handshake header).
func parseHelloBody(b []byte) (ClientHello, error) {
	var hello ClientHello
	c := cursor{b: b}
	if _, ok := c.take(2 + 32); !ok { // legacy_version, random
		return hello, malformed("ClientHello too short for its version and random")
	}
	sid, ok := c.vector(1)
	if !ok || len(sid) > maxSessionID {
		return hello, malformed("bad legacy_session_id")
	}
	suites, ok := c.vector(2)
	if !ok || len(suites) == 0 || len(suites)%2 != 0 {
		return hello, malformed("bad cipher_suites")
	}
	comp, ok := c.vector(1)
	if !ok || len(comp) == 0 {
		return hello, malformed("bad legacy_compression_methods")
	}
	if c.empty() {
		return hello, nil // no extensions (allowed before TLS 1.3)
	}
	exts, ok := c.vector(2)
	if !ok || !c.empty() {
		return hello, malformed("the extensions do not end where the ClientHello does")
	}
	seen := map[uint16]bool{}
	e := cursor{b: exts}
	for !e.empty() {
		typ, ok1 := e.u16()
		body, ok2 := e.vector(2)
		if !ok1 || !ok2 {
			return hello, malformed("truncated extension")
		}
		if seen[typ] {
			return hello, malformed("extension %d given twice", typ)
		}
		seen[typ] = true
		var err error
		switch typ {
		case extServerName:
			hello.ServerName, err = parseServerName(body)
		case extALPN:
			hello.ALPN, err = parseALPN(body)
		}
		if err != nil {
			return ClientHello{}, err
		}
	}
	return hello, nil
}

// parseServerName parses the server_name extension's ServerNameList and
// returns its host_name.
func parseServerName(b []byte) (string, error) {
	c := cursor{b: b}
	list, ok := c.vector(2)
	if !ok || !c.empty() || len(list) == 0 {
		return "", malformed("bad server_name list")
	}
	l := cursor{b: list}
	name := ""
	for !l.empty() {
		typ, ok1 := l.u8()
		v, ok2 := l.vector(2)
		if !ok1 || !ok2 {
			return "", malformed("truncated server_name entry")
		}
		if typ != serverNameHostName {
			continue // an unknown name type; RFC 6066 has only host_name
		}
		if name != "" {
			return "", malformed("two host_name entries")
		}
		if len(v) == 0 {
			return "", malformed("empty host_name")
		}
		for _, ch := range v {
			if ch <= ' ' || ch >= 0x7f {
				return "", malformed("host_name with byte %#02x", ch)
			}
		}
		name = string(v)
	}
	return name, nil
}

// parseALPN parses the ALPN extension's ProtocolNameList.
func parseALPN(b []byte) ([]string, error) {
	c := cursor{b: b}
	list, ok := c.vector(2)
	if !ok || !c.empty() || len(list) == 0 {
		return nil, malformed("bad ALPN protocol list")
	}
	var out []string
	l := cursor{b: list}
	for !l.empty() {
		p, ok := l.vector(1)
		if !ok || len(p) == 0 {
			return nil, malformed("bad ALPN protocol name")
		}
		out = append(out, string(p))
	}
	return out, nil
}

// cursor reads big-endian fields from a byte slice.
type cursor struct{ b []byte }

func (c *cursor) empty() bool { return len(c.b) == 0 }

func (c *cursor) take(n int) ([]byte, bool) {
	if n < 0 || len(c.b) < n {
		return nil, false
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v, true
}

func (c *cursor) u8() (uint8, bool) {
	v, ok := c.take(1)
	if !ok {
		return 0, false
	}
	return v[0], true
}

func (c *cursor) u16() (uint16, bool) {
	v, ok := c.take(2)
	if !ok {
		return 0, false
	}
	return uint16(v[0])<<8 | uint16(v[1]), true
}

// vector reads a length-prefixed vector whose length field has lenBytes
// bytes (1 or 2).
func (c *cursor) vector(lenBytes int) ([]byte, bool) {
	var n int
	switch lenBytes {
	case 1:
		v, ok := c.u8()
		if !ok {
			return nil, false
		}
		n = int(v)
	default:
		v, ok := c.u16()
		if !ok {
			return nil, false
		}
		n = int(v)
	}
	return c.take(n)
}

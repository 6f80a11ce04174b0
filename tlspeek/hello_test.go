package tlspeek

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"testing/iotest"
	"time"
)

// captureConn is a net.Conn that keeps what is written to it and fails
// every read, so a TLS client writes its ClientHello and gives up.
type captureConn struct {
	bytes.Buffer
}

var errCaptured = errors.New("captured")

func (c *captureConn) Read([]byte) (int, error)         { return 0, errCaptured }
func (c *captureConn) Close() error                     { return nil }
func (c *captureConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *captureConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }

// realHello returns the first flight of a crypto/tls client with cfg.
func realHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c := &captureConn{}
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify = true
	if err := tls.Client(c, cfg).Handshake(); !errors.Is(err, errCaptured) {
		t.Fatalf("handshake: %v, want the capture error", err)
	}
	if c.Len() == 0 {
		t.Fatal("the TLS client wrote nothing")
	}
	return c.Bytes()
}

// refragment rewrites the records of data (a ClientHello as sent) so that
// the handshake bytes are split into records of at most size bytes.
func refragment(t testing.TB, data []byte, size int) []byte {
	t.Helper()
	var hs []byte
	for len(data) > 0 {
		n := int(data[3])<<8 | int(data[4])
		hs = append(hs, data[5:5+n]...)
		data = data[5+n:]
	}
	var out []byte
	for len(hs) > 0 {
		n := min(size, len(hs))
		out = append(out, recordHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, hs[:n]...)
		hs = hs[n:]
	}
	return out
}

func TestRealClientHellos(t *testing.T) {
	tests := []struct {
		name string
		cfg  *tls.Config
		sni  string
		alpn []string
	}{
		{"TLS 1.3 defaults", &tls.Config{ServerName: "example.com"}, "example.com", nil},
		{"h2 and http/1.1", &tls.Config{ServerName: "api.example.com", NextProtos: []string{"h2", "http/1.1"}}, "api.example.com", []string{"h2", "http/1.1"}},
		{"TLS 1.2 only", &tls.Config{ServerName: "old.example.com", MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, "old.example.com", []string{"http/1.1"}},
		{"TLS 1.3 only, post-quantum key share", &tls.Config{ServerName: "pq.example.com", MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519}}, "pq.example.com", nil},
		{"an IP address sends no server name", &tls.Config{ServerName: "203.0.113.7", NextProtos: []string{"h2"}}, "", []string{"h2"}},
		{"a long name", &tls.Config{ServerName: "a-rather-long-label-for-a-test.sub.sub.sub.example.org"}, "a-rather-long-label-for-a-test.sub.sub.sub.example.org", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := realHello(t, tc.cfg)
			variants := map[string][]byte{
				"as sent":             raw,
				"in 100-byte records": refragment(t, raw, 100),
				"in 1-byte records":   refragment(t, raw, 1),
			}
			for vname, data := range variants {
				hello, err := ParseClientHello(data)
				if err != nil {
					t.Fatalf("%s: ParseClientHello: %v", vname, err)
				}
				if hello.ServerName != tc.sni || !slices.Equal(hello.ALPN, tc.alpn) {
					t.Errorf("%s: got %q %q, want %q %q", vname, hello.ServerName, hello.ALPN, tc.sni, tc.alpn)
				}
				// Byte by byte, with more bytes after the hello: the
				// reader stops at the hello's end and returns every
				// byte it read.
				more := append(slices.Clone(data), "application data"...)
				got, read, err := ReadClientHello(iotest.OneByteReader(bytes.NewReader(more)), 0)
				if err != nil || got.ServerName != tc.sni || !slices.Equal(got.ALPN, tc.alpn) {
					t.Errorf("%s: ReadClientHello one byte at a time = %q %q %v", vname, got.ServerName, got.ALPN, err)
				}
				if !bytes.Equal(read, data) {
					t.Errorf("%s: read %d bytes, want exactly the hello's %d", vname, len(read), len(data))
				}
				// Every proper prefix is incomplete, never wrong.
				for _, cut := range []int{1, 4, 5, 6, 9, len(data) / 2, len(data) - 1} {
					if _, err := ParseClientHello(data[:cut]); !errors.Is(err, ErrShort) {
						t.Errorf("%s: a %d-byte prefix gives %v, want ErrShort", vname, cut, err)
					}
				}
			}
		})
	}
}

func TestReadClientHelloLimitAndErrors(t *testing.T) {
	raw := realHello(t, &tls.Config{ServerName: "example.com"})
	_, read, err := ReadClientHello(bytes.NewReader(raw), 100)
	if !errors.Is(err, ErrTooLarge) || len(read) != 100 || !bytes.Equal(read, raw[:100]) {
		t.Errorf("limit 100: %d bytes, %v; want the first 100 and ErrTooLarge", len(read), err)
	}
	_, read, err = ReadClientHello(bytes.NewReader(raw[:50]), 0)
	if !errors.Is(err, ErrShort) || !bytes.Equal(read, raw[:50]) {
		t.Errorf("EOF after 50: %d bytes, %v; want them and ErrShort", len(read), err)
	}
	_, read, err = ReadClientHello(iotest.TimeoutReader(bytes.NewReader(raw[:100])), 0)
	if !errors.Is(err, iotest.ErrTimeout) || !bytes.Equal(read, raw[:100]) {
		t.Errorf("a failing read: %d bytes, %v; want the bytes before it and its error", len(read), err)
	}
	_, read, err = ReadClientHello(bytes.NewReader([]byte("SSH-2.0-OpenSSH_9.6\r\n")), 0)
	if !errors.Is(err, ErrNotTLS) || string(read) != "SSH-2.0-OpenSSH_9.6\r\n" {
		t.Errorf("SSH banner: %q, %v; want ErrNotTLS", read, err)
	}
}

// hello builds a ClientHello record around the given extensions.
func hello(exts ...[]byte) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)
	body = append(body, 0)                // session id
	body = append(body, 0, 2, 0x13, 0x01) // one suite
	body = append(body, 1, 0)             // null compression
	if exts != nil {
		var all []byte
		for _, e := range exts {
			all = append(all, e...)
		}
		body = append(body, byte(len(all)>>8), byte(len(all)))
		body = append(body, all...)
	}
	msg := append([]byte{handshakeHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{recordHandshake, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

func ext(typ uint16, data []byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, 0, byte(len(n)>>8), byte(len(n)))
		list = append(list, n...)
	}
	return ext(extServerName, append([]byte{byte(len(list) >> 8), byte(len(list))}, list...))
}

func TestParseClientHelloCrafted(t *testing.T) {
	good := hello(sniExt("example.com"))
	if h, err := ParseClientHello(good); err != nil || h.ServerName != "example.com" {
		t.Fatalf("crafted hello: %+v, %v", h, err)
	}
	if h, err := ParseClientHello(hello()); err != nil || h.ServerName != "" || h.ALPN != nil {
		t.Errorf("hello without extensions: %+v, %v", h, err)
	}
	tests := map[string][]byte{
		"two server_name extensions": hello(sniExt("a.example"), sniExt("b.example")),
		"two host names":             hello(sniExt("a.example", "b.example")),
		"an empty host name":         hello(sniExt("")),
		"a space in the name":        hello(sniExt("a b.example")),
		"a NUL in the name":          hello(sniExt("a\x00.example")),
		"non-ASCII name":             hello(sniExt("bücher.example")),
		"empty ALPN list":            hello(ext(extALPN, []byte{0, 0})),
		"empty ALPN protocol":        hello(ext(extALPN, []byte{0, 1, 0})),
		"extension overruns":         hello(append(ext(extServerName, nil)[:3], 9)),
		"not a ClientHello":          {recordHandshake, 3, 1, 0, 4, 2, 0, 0, 0},
		"record version 2":           append([]byte{recordHandshake, 2, 0, 0, 4}, good[5:]...),
		"zero-length record":         append([]byte{recordHandshake, 3, 1, 0, 0}, good...),
		"record too long":            append([]byte{recordHandshake, 3, 1, 0x40, 0x01}, good[5:]...),
		"alert inside the hello":     append(refragment(t, good, 10)[:15], 21, 3, 3, 0, 2, 2, 40),
	}
	for name, data := range tests {
		if _, err := ParseClientHello(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := ParseClientHello([]byte("GET / HTTP/1.1\r\n")); !errors.Is(err, ErrNotTLS) {
		t.Errorf("HTTP: %v, want ErrNotTLS", err)
	}
	// A truncated inner length is malformed once the whole message is in.
	bad := slices.Clone(good)
	bad[5+4+2+32] = 33 // session id length beyond the message
	if _, err := ParseClientHello(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("session id past the end: %v, want ErrMalformed", err)
	}
}

func TestPeek(t *testing.T) {
	raw := realHello(t, &tls.Config{ServerName: "tls.example", NextProtos: []string{"h2"}})
	tests := []struct {
		in      []byte
		kind    Kind
		name    string
		wantErr error
	}{
		{raw, KindTLS, "tls.example", nil},
		{[]byte("GET /x HTTP/1.1\r\nHost: web.example:8080\r\n\r\nbody"), KindHTTP, "web.example", nil},
		{[]byte("SSH-2.0-OpenSSH_9.6\r\n"), KindHTTP, "", ErrNotHTTP},
		{[]byte{0, 1, 2}, KindUnknown, "", ErrNotTLS},
		{[]byte("get / HTTP/1.1\r\n"), KindUnknown, "", ErrNotTLS},
	}
	for _, tc := range tests {
		p, read, err := Peek(iotest.HalfReader(bytes.NewReader(tc.in)), 0)
		if p.Kind != tc.kind || p.Name != tc.name || (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
			t.Errorf("Peek(%.20q) = %+v, %v; want %v %q %v", tc.in, p, err, tc.kind, tc.name, tc.wantErr)
		}
		if !bytes.HasPrefix(tc.in, read) || len(read) == 0 {
			t.Errorf("Peek(%.20q) read %q, not a non-empty prefix of the input", tc.in, read)
		}
	}
	p, _, _ := Peek(bytes.NewReader(raw), 0)
	if !slices.Equal(p.ALPN, []string{"h2"}) || p.Kind.String() != "TLS" {
		t.Errorf("Peek ALPN %q kind %v", p.ALPN, p.Kind)
	}
	if _, _, err := Peek(bytes.NewReader(nil), 0); !errors.Is(err, ErrShort) {
		t.Errorf("Peek on nothing: %v, want ErrShort", err)
	}
	if _, _, err := Peek(io.MultiReader(), 0); !errors.Is(err, ErrShort) {
		t.Errorf("Peek on an empty reader: %v, want ErrShort", err)
	}
}

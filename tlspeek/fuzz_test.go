package tlspeek

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
	"testing/iotest"
)

// checkRead checks the properties every Read function keeps: the bytes it
// returns are a prefix of the input no longer than the limit, and a
// success is what parsing those bytes gives.
func checkRead(t *testing.T, data, read []byte, max int, err error) {
	t.Helper()
	if !bytes.HasPrefix(data, read) {
		t.Fatalf("read %q is not a prefix of the input", read)
	}
	if len(read) > max {
		t.Fatalf("read %d bytes, over the limit %d", len(read), max)
	}
	if err == nil && len(read) == 0 {
		t.Fatal("success without a byte")
	}
	if err != nil && !errors.Is(err, ErrShort) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) &&
		!errors.Is(err, ErrNotTLS) && !errors.Is(err, ErrNotHTTP) {
		t.Fatalf("unexpected error kind: %v", err)
	}
}

func FuzzClientHello(f *testing.F) {
	for _, cfg := range []*tls.Config{
		{ServerName: "example.com", NextProtos: []string{"h2", "http/1.1"}},
		{ServerName: "old.example", MaxVersion: tls.VersionTLS12},
	} {
		raw := realHello(f, cfg)
		f.Add(raw, 0)
		f.Add(refragment(f, raw, 7), 64)
	}
	f.Add(hello(sniExt("a.example", "b.example")), 0)
	f.Add([]byte{recordHandshake, 3, 1, 0, 0}, 0)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		max = max&0xffff + 1
		hello, perr := ParseClientHello(data)
		got, read, err := ReadClientHello(iotest.HalfReader(bytes.NewReader(data)), max)
		checkRead(t, data, read, max, err)
		if err == nil {
			again, err2 := ParseClientHello(read)
			if err2 != nil || again.ServerName != got.ServerName || len(again.ALPN) != len(got.ALPN) {
				t.Fatalf("reparse of the read bytes: %+v, %v; read gave %+v", again, err2, got)
			}
			if perr != nil || hello.ServerName != got.ServerName {
				t.Fatalf("ParseClientHello on the whole input: %+v, %v; read gave %+v", hello, perr, got)
			}
		}
	})
}

func FuzzRequest(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), 0)
	f.Add([]byte("CONNECT a.example:443 HTTP/1.1\r\n\r\n"), 0)
	f.Add([]byte("GET http://[2001:db8::1]:80/ HTTP/1.0\n\n"), 10)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		max = max&0xffff + 1
		req, perr := ParseRequest(data)
		got, read, err := ReadRequest(iotest.OneByteReader(bytes.NewReader(data)), max)
		checkRead(t, data, read, max, err)
		if err == nil {
			if again, err2 := ParseRequest(read); err2 != nil || again != got {
				t.Fatalf("reparse of the read bytes: %+v, %v; read gave %+v", again, err2, got)
			}
			if perr != nil || req != got {
				t.Fatalf("ParseRequest on the whole input: %+v, %v; read gave %+v", req, perr, got)
			}
			if got.Host != "" && bytes.ContainsAny([]byte(got.Host), " \t\r\n@/") {
				t.Fatalf("host %q has a byte no host has", got.Host)
			}
		}
	})
}

//go:build linux

package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSplitTarget(t *testing.T) {
	for _, c := range []struct {
		in   string
		host string
		port uint16
		ok   bool
	}{
		{"127.0.0.1:443", "127.0.0.1", 443, true},
		{"example.test:8443", "example.test", 8443, true},
		{"[2001:db8::1]:443", "2001:db8::1", 443, true},
		{"127.0.0.1:0", "", 0, false},
		{"127.0.0.1:65536", "", 0, false},
		{"127.0.0.1", "", 0, false},
		{":443", "", 0, false},
		{"127.0.0.1:-1", "", 0, false},
		{"", "", 0, false},
	} {
		host, port, err := splitTarget(c.in)
		if (err == nil) != c.ok || host != c.host || port != c.port {
			t.Errorf("splitTarget(%q) = %q, %d, %v; want %q, %d, ok=%v", c.in, host, port, err, c.host, c.port, c.ok)
		}
	}
}

func TestParseHarnessLine(t *testing.T) {
	tun, insp, err := parseHarnessLine("tunnel 127.0.0.1:1000 inspect 127.0.0.1:1001")
	if err != nil || tun != "127.0.0.1:1000" || insp != "127.0.0.1:1001" {
		t.Errorf("got %q %q %v", tun, insp, err)
	}
	for _, bad := range []string{"", "tunnel 127.0.0.1:1000", "inspect 127.0.0.1:1 tunnel 127.0.0.1:2", "tunnel x inspect 127.0.0.1:1", "tunnel 127.0.0.1:1 inspect 127.0.0.1:2 extra"} {
		if _, _, err := parseHarnessLine(bad); err == nil {
			t.Errorf("parseHarnessLine(%q) accepted", bad)
		}
	}
}

// FuzzParseHarnessLine: the helper's first line is accepted only in its
// one shape.
func FuzzParseHarnessLine(f *testing.F) {
	f.Add("tunnel 127.0.0.1:1000 inspect 127.0.0.1:1001")
	f.Add("tunnel  inspect ")
	f.Fuzz(func(t *testing.T, line string) {
		tun, insp, err := parseHarnessLine(line)
		if err != nil {
			return
		}
		if _, _, e := splitTarget(tun); e != nil {
			t.Fatalf("accepted tunnel %q from %q", tun, line)
		}
		if _, _, e := splitTarget(insp); e != nil {
			t.Fatalf("accepted inspect %q from %q", insp, line)
		}
	})
}

// TestInspectHarnessPaths runs the bench's own harness in this process and
// checks that every sandgate path really carries HTTPS: a bulk GET over
// HTTP/1.1 and h2, and new connections, direct, tunnelled and inspected;
// and that the inspected path presents the run CA's certificate (a client
// trusting only the upstream's CA fails there).
func TestInspectHarnessPaths(t *testing.T) {
	up, err := startTLSUpstream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, up.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := startInspectHarness(up.addr(), caFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	runCA, err := poolFromFileBytes(t, h.auth.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	paths := []tlsPath{
		{name: "direct", roots: up.pool},
		{name: "tunnel", proxy: h.tunnelLn.Addr().String(), roots: up.pool},
		{name: "inspect", proxy: h.inspectLn.Addr().String(), roots: runCA},
	}
	for _, p := range paths {
		for _, h2 := range []bool{false, true} {
			if r := bulkGET(p, up.addr(), h2, 3<<20, 20*time.Second); !r.ok() || r.Bytes != 3<<20 {
				t.Errorf("%s bulk (h2=%v): %+v", p.name, h2, r)
			}
		}
		if r, n := freshTLS(p, up.addr(), 2, 100*time.Millisecond, nil); !r.ok() || r.Ops == 0 || n != 0 {
			t.Errorf("%s fresh: %+v, %d resumed", p.name, r, n)
		}
		if r, n := freshTLS(p, up.addr(), 1, 100*time.Millisecond, tls.NewLRUClientSessionCache(4)); !r.ok() || r.Ops < 2 || n != r.Ops-1 {
			t.Errorf("%s fresh, resuming: %+v, %d resumed (want all but the first)", p.name, r, n)
		}
	}
	wrong := tlsPath{name: "inspect-untrusted", proxy: h.inspectLn.Addr().String(), roots: up.pool}
	if _, err := freshTLSOnce(wrong, up.addr(), make([]byte, 4096), nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("inspected path with only the upstream CA trusted: %v, want a certificate error", err)
	}
}

// poolFromFileBytes writes pem to a file and reads it back as a pool.
func poolFromFileBytes(t *testing.T, pem []byte) (*x509.CertPool, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "run-ca.pem")
	if err := os.WriteFile(file, pem, 0o644); err != nil {
		return nil, err
	}
	return poolFromFile(file)
}

// TestSrtDecider speaks srt's decider protocol to the bench's decider: the
// hello gets the allowed list (and an empty denied list, which srt
// requires), every request an allow for its id.
func TestSrtDecider(t *testing.T) {
	ours, theirs := net.Pipe()
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	go serveSrtDecider(theirs, []string{"127.0.0.1"})
	ours.SetDeadline(time.Now().Add(5 * time.Second))
	read := func() map[string]any {
		t.Helper()
		var hdr [4]byte
		if _, err := io.ReadFull(ours, hdr[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(ours, body); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if err := writeDeciderFrame(ours, map[string]any{"t": "hello", "proto": 1}); err != nil {
		t.Fatal(err)
	}
	hello := read()
	if hello["t"] != "hello" || hello["proto"] != 1.0 || fmt.Sprint(hello["allowedDomains"]) != "[127.0.0.1]" || fmt.Sprint(hello["deniedDomains"]) != "[]" {
		t.Errorf("hello reply %v", hello)
	}
	for _, id := range []int{1, 2, 7} {
		if err := writeDeciderFrame(ours, map[string]any{"t": "req", "id": id, "method": "GET", "host": "127.0.0.1", "port": 443, "path": "/"}); err != nil {
			t.Fatal(err)
		}
		v := read()
		if v["t"] != "verdict" || v["action"] != "allow" || v["id"] != float64(id) || len(v) != 3 {
			t.Errorf("verdict for %d: %v", id, v)
		}
	}
}

func TestReadDeciderFrameRefuses(t *testing.T) {
	for name, raw := range map[string][]byte{
		"empty frame": {0, 0, 0, 0},
		"over 1 MiB":  {0, 0x10, 0, 1},
		"short":       {0, 0, 0, 9, '{'},
		"not JSON":    append([]byte{0, 0, 0, 3}, "abc"...),
	} {
		if m, err := readDeciderFrame(bytes.NewReader(raw)); err == nil {
			t.Errorf("%s: accepted as %+v", name, m)
		}
	}
}

// FuzzReadDeciderFrame: a frame from srt is read or refused, never more
// than its declared length consumed.
func FuzzReadDeciderFrame(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x16{\"t\":\"req\",\"id\":1}xxxx"))
	f.Add([]byte("\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := bytes.NewReader(raw)
		if _, err := readDeciderFrame(r); err == nil {
			n := int(binary.BigEndian.Uint32(raw[:4]))
			if used := len(raw) - r.Len(); used != 4+n {
				t.Fatalf("consumed %d bytes of a %d-byte frame", used, n)
			}
		}
	})
}

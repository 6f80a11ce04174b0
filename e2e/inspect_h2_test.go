//go:build linux

package e2e

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// HTTP/2, gRPC and WebSocket through an inspected host (issue 12), with
// the real binary and an upstream that offers h2 like a public server.

// wsAccept is the Sec-WebSocket-Accept of key (RFC 6455).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// protocolsHandler serves /h2/… (names the protocol and ALPN it got),
// /sgtest.*/… as a gRPC method (one message in, "pong:" and it out,
// trailers grpc-status 0), and /ws/… as a WebSocket that echoes lines
// after the upgrade, prefixed "sgtest-ws-echo ".
func protocolsHandler(t *testing.T, log *seenLog) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log.add(r)
		switch {
		case strings.HasPrefix(r.URL.Path, "/sgtest."):
			serveGRPC(rw, r)
		case strings.HasPrefix(r.URL.Path, "/ws/"):
			serveWebSocket(t, rw, r)
		default:
			alpn := ""
			if r.TLS != nil {
				alpn = r.TLS.NegotiatedProtocol
			}
			fmt.Fprintf(rw, "sgtest-h2 proto=%s alpn=%s path=%s\n", r.Proto, alpn, r.URL.Path)
		}
	})
}

// serveGRPC answers one gRPC-shaped call.
func serveGRPC(rw http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 || r.Header.Get("Content-Type") != "application/grpc" {
		http.Error(rw, "sgtest: gRPC wants HTTP/2 and application/grpc, got "+r.Proto+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil || len(body) < 5 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
		http.Error(rw, "sgtest: not one gRPC message", http.StatusBadRequest)
		return
	}
	msg := append([]byte("pong:"), body[5:]...)
	out := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	rw.Header().Set("Content-Type", "application/grpc")
	rw.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(append(out, msg...))
	rw.Header().Set("Grpc-Status", "0")
	rw.Header().Set("Grpc-Message", "sgtest-ok")
}

// serveWebSocket upgrades an HTTP/1.1 request and echoes lines.
func serveWebSocket(t *testing.T, rw http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(rw, "sgtest: a WebSocket upgrade over HTTP/1.1 expected, got "+r.Proto, http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(rw).Hijack()
	if err != nil {
		t.Errorf("hijacking the upgrade: %v", err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	if brw.Flush() != nil {
		return
	}
	br := bufio.NewReader(brw)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(conn, "sgtest-ws-echo "+line); err != nil {
			return
		}
	}
}

const protocolsScript = `
u="https://remote.test:$1"
curl -sS --max-time 10 --http2 -o body.txt -w 'T-CURL-H2=%{http_code} %{http_version}\n' "$u/h2/curl"
cat body.txt
curl -sS --max-time 10 --http2 -o /dev/null -w 'T-CURL-H2-REFUSED=%{http_code} %{http_version}\n' -X DELETE "$u/h2/curl"
"$2" h2 "$u/h2/go" + grpc "$u/sgtest.Echo/Say" + grpc "$u/sgtest.Admin/Drop" + h2 "$u/other" + \
  websocket "wss://remote.test:$1/ws/echo" + websocket "wss://remote.test:$1/ws/private"
exit 0
`

// TestInspectHTTP2GRPCWebSocket: through an inspected host, curl and a Go
// client speak HTTP/2 (ALPN h2 with CMD, and with the upstream, which
// sees HTTP/2.0), a gRPC-shaped call (h2 POST application/grpc) gets its
// message and its grpc-status trailer, and a WebSocket upgrade of an
// allowed path passes and echoes; a gRPC method, a path and an upgrade
// the rules do not allow are 403 blocked-by-path (over h2 for the first
// two) and never reach the server.
func TestInspectHTTP2GRPCWebSocket(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "curl", "unshare", "mount")
	var log seenLog
	port := serveRemoteH2(t, w, protocolsHandler(t, &log))
	d := newClientDirs(t)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{"--backend", "netns", "--audit", auditFile,
		"--allow", "GET remote.test/h2/**", "--allow", "POST remote.test/sgtest.Echo/*", "--allow", "GET remote.test/ws/echo"}
	o := runTrusting(t, w, d, flags, protocolsScript, port, probeBin)
	t.Logf("the server saw:%s", log.String())

	wantOutput(t, o, "T-CURL-H2=200 2", "sgtest-h2 proto=HTTP/2.0 alpn=h2 path=/h2/curl", "T-CURL-H2-REFUSED=403 2")
	want := []struct {
		check, arg string
		ok         bool
		detail     []string
	}{
		{"h2", "/h2/go", true, []string{"HTTP/2.0 200 OK: sgtest-h2 proto=HTTP/2.0 alpn=h2 path=/h2/go"}},
		{"grpc", "/sgtest.Echo/Say", true, []string{`HTTP/2.0 message="pong:sgtest-ping" grpc-status=0 grpc-message=sgtest-ok`}},
		{"grpc", "/sgtest.Admin/Drop", false, []string{"HTTP/2.0 403", "[X-Proxy-Error: blocked-by-path]"}},
		{"h2", "/other", false, []string{"HTTP/2.0 403", "[X-Proxy-Error: blocked-by-path]"}},
		{"websocket", "/ws/echo", true, []string{`101 Switching Protocols, then "sgtest-ws-echo sgtest-ws-hello"`}},
		{"websocket", "/ws/private", false, []string{"upgrade: 403", "[X-Proxy-Error: blocked-by-path]"}},
	}
	for _, wt := range want {
		var got *probeResult
		for i, p := range o.probes {
			if p.Check == wt.check && len(p.Args) == 1 && strings.HasSuffix(p.Args[0], wt.arg) {
				got = &o.probes[i]
			}
		}
		if got == nil {
			t.Errorf("no %s %s result; stdout:\n%s", wt.check, wt.arg, o.stdout)
			continue
		}
		if got.OK != wt.ok {
			t.Errorf("%s %s: ok=%v, want %v: %s", wt.check, wt.arg, got.OK, wt.ok, got.Detail)
		}
		for _, s := range wt.detail {
			if !strings.Contains(got.Detail, s) {
				t.Errorf("%s %s: detail %q lacks %q", wt.check, wt.arg, got.Detail, s)
			}
		}
	}

	for _, c := range []struct{ method, path, proto string }{
		{"GET", "/h2/curl", "HTTP/2.0"}, {"GET", "/h2/go", "HTTP/2.0"}, {"POST", "/sgtest.Echo/Say", "HTTP/2.0"}, {"GET", "/ws/echo", "HTTP/1.1"},
	} {
		s, ok := log.find(c.method, c.path)
		if !ok {
			t.Errorf("the server never got %s %s", c.method, c.path)
			continue
		}
		if s.proto != c.proto || (c.proto == "HTTP/2.0") != (s.alpn == "h2") {
			t.Errorf("%s %s reached the server in %s (ALPN %q), want %s", c.method, c.path, s.proto, s.alpn, c.proto)
		}
	}
	for _, c := range []struct{ method, path string }{{"DELETE", "/h2/curl"}, {"POST", "/sgtest.Admin/"}, {"GET", "/other"}, {"GET", "/ws/private"}} {
		if _, ok := log.find(c.method, c.path); ok {
			t.Errorf("the refused %s %s reached the server", c.method, c.path)
		}
	}
	evs := readRequestAudit(t, auditFile)
	findEvent(t, evs, "POST", "/sgtest.Echo/Say", "allowed")
	findEvent(t, evs, "GET", "/ws/echo", "allowed")
	findEvent(t, evs, "DELETE", "/h2/curl", "blocked-by-method")
	for _, c := range []struct{ method, path string }{{"POST", "/sgtest.Admin/Drop"}, {"GET", "/other"}, {"GET", "/ws/private"}} {
		if e := findEvent(t, evs, c.method, c.path, "blocked-by-path"); e.Decision != "deny" {
			t.Errorf("refusal event %+v", e)
		}
	}
}

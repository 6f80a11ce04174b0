//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/internal/squidtest"
)

const upstreamInspectScript = `
curl -sS --max-time 10 -o /dev/null -w 'T-GET=%{http_code}\n' "https://remote.test:$1/docs/a"
curl -sS --max-time 10 -D hdr.txt -o /dev/null -w 'T-POST=%{http_code}\n' -X POST -d leak=1 "https://remote.test:$1/docs/a"
grep -i '^x-proxy-error: blocked-by-method' hdr.txt >/dev/null && echo T-POST-BLOCKED-BY-METHOD
exit 0
`

// TestRunReadOnlyThroughUpstream: --read-only with --upstream-proxy (a real
// squid): the inspected host is reached through squid's CONNECT, sandgate
// still verifies the host's own certificate at the far end of that tunnel
// (against SSL_CERT_FILE, the fake internet's CA) and decides each request:
// the GET reaches the server, the POST is 403 blocked-by-method and never
// does. The audit has one event per request with method and path, and the
// exit summary says in plain words what was refused.
func TestRunReadOnlyThroughUpstream(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "curl")
	var log requestLog
	port := serveRemoteTLS(t, w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log.add(r)
		fmt.Fprintf(rw, "sgtest-inspect %s %s\n", r.Method, r.URL.Path)
	}))
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	sq := squidtest.Start(t, squidtest.Config{
		Wrap:  []string{"ip", "netns", "exec", w.hostNS},
		Hosts: map[string]string{"remote.test": remoteV4},
		Ports: []uint16{uint16(p)},
	})
	d := newClientDirs(t)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{"--backend", "netns", "--no-transparent", "--audit", auditFile,
		"--upstream-proxy", "http://" + sq.Addr, "--read-only", "remote.test"}
	o := runInspected(t, w, d, flags, upstreamInspectScript, port)
	wantOutput(t, o, "T-GET=200", "T-POST=403", "T-POST-BLOCKED-BY-METHOD")
	sq.WaitLog(t, "CONNECT remote.test:"+port)
	if !log.has("GET /docs/a") || log.has("POST /docs/a") {
		t.Errorf("the server saw %v, want the GET and not the POST", log.seen)
	}
	evs := readRequestAudit(t, auditFile)
	findEvent(t, evs, "GET", "/docs/a", "allowed")
	if e := findEvent(t, evs, "POST", "/docs/a", "blocked-by-method"); e.Decision != "deny" || !strings.Contains(e.Text, "--read-only remote.test") {
		t.Errorf("refusal event %+v, want a deny naming the rule", e)
	}
	n := 0
	for _, e := range evs {
		if e.Host == "remote.test" && e.Method != "" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d request events for remote.test, want 2 (one per request): %+v", n, evs)
	}
	if !strings.Contains(o.stderr, "refused 1 request: remote.test:"+port+" (method not allowed by the host's rules)") ||
		!strings.Contains(o.stderr, "to allow it, add --allow 'POST remote.test:"+port+"/docs/a'") {
		t.Errorf("the exit summary does not say plainly that one request was refused by its method:\n%s", o.stderr)
	}

	// Without the fake internet's CA in sandgate's trust, the far end of
	// squid's tunnel is not trusted: 502 upstream-tls, nothing forwarded.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := w.hostCmd(ctx, nil, d.home, sandgateArgv(flags, "/bin/sh", "-c",
		`curl -sS --max-time 10 -D hdr.txt -o /dev/null -w 'T-GET=%{http_code}\n' "https://remote.test:$1/docs/untrusted"; grep -i '^x-proxy-error: upstream-tls' hdr.txt >/dev/null && echo T-UPSTREAM-TLS; exit 0`, "sh", port)...)
	c.Dir = d.project
	o = finish(t, c)
	wantOutput(t, o, "T-GET=502", "T-UPSTREAM-TLS")
	if log.has("/docs/untrusted") {
		t.Errorf("a request reached a server sandgate could not verify")
	}
}

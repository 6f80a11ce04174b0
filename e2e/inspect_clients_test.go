//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Real clients through an inspected host with no setup at all (issue 12):
// sandgate runs in a private mount namespace whose system trust bundle is
// the host's plus the fake internet's CA (as a public CA is in a real
// host's bundle), and neither sandgate nor CMD gets a certificate
// variable, flag or option from the test. CMD trusts the run's CA only
// through what sandgate gives it: the view's system bundles, the trust
// variables and the JVM's trust store.

// hostBundle is the system bundle sandgate (Go) and trustenv read first.
const hostBundle = "/etc/ssl/certs/ca-certificates.crt"

// trustedBundle writes the host's bundle with the world's CA added to a
// file of the test and returns its path.
func trustedBundle(t *testing.T, w *world) string {
	t.Helper()
	host, err := os.ReadFile(hostBundle)
	if err != nil {
		t.Fatalf("the host's trust bundle: %v", err)
	}
	ca, err := os.ReadFile(w.caFile)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca-certificates.crt")
	if err := os.WriteFile(p, append(append(host, '\n'), ca...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bindBundle is the shell that binds $1 over the host bundle and execs
// the rest of its arguments, run by unshare in a private mount namespace.
const bindBundle = `mount --bind "$1" ` + hostBundle + ` && shift && exec "$@"`

// runTrusting runs `sandgate run FLAGS -- /bin/sh -c SCRIPT sh ARGS...` in
// the project directory of d, as root in the host namespace, with the
// world's CA in the system bundle of sandgate's mount namespace and no
// trust variable anywhere.
func runTrusting(t *testing.T, w *world, d *clientDirs, flags []string, script string, args ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	argv := append([]string{"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", bindBundle, "sh", trustedBundle(t, w)},
		sandgateArgv(flags, append([]string{"/bin/sh", "-c", script, "sh"}, args...)...)...)
	c := w.hostCmd(ctx, nil, d.home, argv...)
	c.Dir = d.project
	for _, kv := range c.Env {
		if k, _, _ := strings.Cut(kv, "="); strings.Contains(k, "CERT") || strings.Contains(k, "CA_") || k == "JAVA_TOOL_OPTIONS" {
			t.Fatalf("the test gives the run a trust variable: %s", kv)
		}
	}
	return finish(t, c)
}

// seenRequest is what a test server saw of one request.
type seenRequest struct {
	method, uri, proto, alpn, ua string
}

// seenLog records the requests a test server was sent.
type seenLog struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (l *seenLog) add(r *http.Request) {
	s := seenRequest{method: r.Method, uri: r.URL.RequestURI(), proto: r.Proto, ua: r.UserAgent()}
	if r.TLS != nil {
		s.alpn = r.TLS.NegotiatedProtocol
	}
	l.mu.Lock()
	l.reqs = append(l.reqs, s)
	l.mu.Unlock()
}

// find returns the first request whose method and URI start as given.
func (l *seenLog) find(method, uriPrefix string) (seenRequest, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.reqs {
		if s.method == method && strings.HasPrefix(s.uri, uriPrefix) {
			return s, true
		}
	}
	return seenRequest{}, false
}

func (l *seenLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, s := range l.reqs {
		fmt.Fprintf(&b, "\n  %s %s %s alpn=%q ua=%q", s.method, s.uri, s.proto, s.alpn, s.ua)
	}
	return b.String()
}

// serveRemoteH2 is serveRemoteTLS with h2 offered besides http/1.1, as
// public servers do.
func serveRemoteH2(t *testing.T, w *world, h http.Handler) string {
	t.Helper()
	var ls []net.Listener
	err := w.remote.Do(func() error {
		l, err := net.Listen("tcp", net.JoinHostPort(remoteV4, "0"))
		if err != nil {
			return err
		}
		ls = append(ls, l)
		_, port, _ := net.SplitHostPort(l.Addr().String())
		l6, err := net.Listen("tcp", net.JoinHostPort(remoteV6, port))
		if err != nil {
			return err
		}
		ls = append(ls, l6)
		return nil
	})
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		t.Fatalf("listening in the remote: %v", err)
	}
	for _, l := range ls {
		tc := w.serverTLS.Clone()
		tc.NextProtos = []string{"h2", "http/1.1"}
		srv := &http.Server{Handler: h, TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second}
		go srv.ServeTLS(l, "", "") // ServeTLS sets up h2
		t.Cleanup(func() { srv.Close() })
	}
	_, port, _ := net.SplitHostPort(ls[0].Addr().String())
	return port
}

// javaGetPost is Client.java: Java 17's HttpClient (default SSLContext and
// proxy selector) GETs args[0] and POSTs to args[1].
const javaGetPost = `import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Client {
    public static void main(String[] args) throws Exception {
        HttpClient c = HttpClient.newHttpClient();
        HttpResponse<String> g = c.send(HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.ofString());
        System.out.println("T-JAVA-GET=" + g.statusCode() + " " + g.version());
        HttpResponse<String> p = c.send(HttpRequest.newBuilder(URI.create(args[1]))
            .POST(HttpRequest.BodyPublishers.ofString("leak=1")).build(), HttpResponse.BodyHandlers.ofString());
        System.out.println("T-JAVA-POST=" + p.statusCode() + " " + p.headers().firstValue("x-proxy-error").orElse(""));
    }
}
`

const pythonGetPost = `
import sys, urllib.request, urllib.error
u = sys.argv[1]
print("T-PYTHON-GET=%d" % urllib.request.urlopen(u + "/c/python", timeout=10).status)
try:
    urllib.request.urlopen(urllib.request.Request(u + "/c/python-post", data=b"leak=1", method="POST"), timeout=10)
    print("T-PYTHON-POST=200")
except urllib.error.HTTPError as e:
    print("T-PYTHON-POST=%d %s" % (e.code, e.headers.get("X-Proxy-Error")))
`

const nodeGetPost = `
const https = require("https");
const u = process.argv[1];
const fail = e => { console.log("T-NODE-ERROR " + e.message); process.exitCode = 1; };
https.get(u + "/c/node", r => {
  console.log("T-NODE-GET=" + r.statusCode);
  r.resume();
  r.on("end", () => {
    const q = https.request(u + "/c/node-post", { method: "POST" }, r2 => {
      console.log("T-NODE-POST=" + r2.statusCode + " " + (r2.headers["x-proxy-error"] || ""));
      r2.resume();
    });
    q.on("error", fail);
    q.end("leak=1");
  });
}).on("error", fail);
`

// clientsScript runs every client against https://remote.test:$1; $2 is
// the directory of Client.java, $3 the probe, $4 python's, $5 node's
// script.
const clientsScript = `
u="https://remote.test:$1"
echo "T-CURL-GET=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{http_version}' "$u/c/curl")"
curl -sS --max-time 10 -D hdr.txt -o /dev/null -w 'T-CURL-POST=%{http_code}\n' -X POST -d leak=1 "$u/c/curl-post"
grep -i '^x-proxy-error:' hdr.txt | tr -d '\r' | sed 's/^/T-CURL-POST-ERROR /'
git clone -q "$u/git/repo.git" clone && echo T-GIT-CLONE-OK && cat clone/hello.txt
python3 -c "$4" "$u"
node -e "$5" "$u"
"$3" http "$u/c/go"
java "$2/Client.java" "$u/c/java" "$u/c/java-post" 2>&1 | grep -v '^Picked up JAVA_TOOL_OPTIONS'
exit 0
`

// TestInspectRealClients: curl, git (clone), Python's urllib, Node's
// https, a Go client (the probe) and Java 17's HttpClient each GET an
// inspected host (--read-only, and --read-only-git for git's path) with no
// setup of their own, and each one's POST is refused with 403
// blocked-by-method before it reaches the server. Node (which ignores the
// proxy variables) goes by the transparent path, the others by CONNECT.
func TestInspectRealClients(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "curl", "git", gitHTTPBackend, "python3", "node", "java", "unshare", "mount")
	served := t.TempDir()
	newBareRepo(t, served, "sgtest inspected clone\n")
	cgiH := &cgi.Handler{Path: gitHTTPBackend, Root: "/git", Env: []string{"GIT_PROJECT_ROOT=" + served, "GIT_HTTP_EXPORT_ALL=1"}}
	var log seenLog
	port := serveRemoteH2(t, w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log.add(r)
		if strings.HasPrefix(r.URL.Path, "/git/") {
			cgiH.ServeHTTP(rw, r)
			return
		}
		fmt.Fprintf(rw, "sgtest-client %s %s\n", r.Method, r.URL.Path)
	}))
	javaDir := filepath.Join(binDir, "java-"+port)
	if err := os.Mkdir(javaDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(javaDir) })
	if err := os.WriteFile(filepath.Join(javaDir, "Client.java"), []byte(javaGetPost), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newClientDirs(t)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{"--backend", "netns", "--audit", auditFile, "--read-only", "remote.test", "--read-only-git", "remote.test/git/*"}
	o := runTrusting(t, w, d, flags, clientsScript, port, javaDir, probeBin, pythonGetPost, nodeGetPost)

	t.Logf("the server saw:%s", log.String())
	wantOutput(t, o, "T-CURL-GET=200", "T-CURL-POST=403", "T-CURL-POST-ERROR x-proxy-error: blocked-by-method",
		"T-GIT-CLONE-OK", "sgtest inspected clone",
		"T-PYTHON-GET=200", "T-PYTHON-POST=403 blocked-by-method",
		"T-NODE-GET=200", "T-NODE-POST=403 blocked-by-method",
		`"check":"http","args":["https://remote.test:`+port+`/c/go"],"ok":true`,
		"T-JAVA-GET=200", "T-JAVA-POST=403 blocked-by-method")
	for _, c := range []struct{ path, ua string }{
		{"/c/curl", "curl/"}, {"/c/python", "Python-urllib/"}, {"/c/node", ""}, {"/c/go", "Go-http-client/"},
		{"/c/java", "Java-http-client/"}, {"/git/repo.git/info/refs?service=git-upload-pack", "git/"},
	} {
		s, ok := log.find("GET", c.path)
		if !ok {
			t.Errorf("the server never got GET %s", c.path)
		} else if !strings.HasPrefix(s.ua, c.ua) {
			t.Errorf("GET %s came with User-Agent %q, want %s…", c.path, s.ua, c.ua)
		}
	}
	if _, ok := log.find("POST", "/git/repo.git/git-upload-pack"); !ok {
		t.Errorf("git's upload-pack POST did not reach the server")
	}
	for _, c := range []string{"curl", "python", "node", "java"} {
		if _, ok := log.find("POST", "/c/"+c+"-post"); ok {
			t.Errorf("%s's refused POST reached the server", c)
		}
	}
	evs := readRequestAudit(t, auditFile)
	for _, c := range []string{"curl", "python", "node", "go", "java"} {
		e := findEvent(t, evs, "GET", "/c/"+c, "allowed")
		t.Logf("%s: GET by %s", c, e.Proto)
		if c != "go" {
			if e := findEvent(t, evs, "POST", "/c/"+c+"-post", "blocked-by-method"); e.Decision != "deny" {
				t.Errorf("%s's POST event %+v", c, e)
			}
		}
	}
	d.homeUnchanged(t)
}

// TestInspectUpstreamTLSRefusal: an inspected upstream whose certificate
// sandgate cannot verify (the world's CA in no trust store of sandgate's)
// is a refusal: 502 upstream-tls for CMD, a deny in the audit, and the
// exit summary says so in plain words and names why.
func TestInspectUpstreamTLSRefusal(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "curl")
	var log seenLog
	port := serveRemoteH2(t, w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log.add(r)
		fmt.Fprintln(rw, "sgtest-untrusted")
	}))
	d := newClientDirs(t)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	o := d.run(t, w, []string{"--backend", "netns", "--audit", auditFile, "--read-only", "remote.test"},
		"curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "T-CODE=%{http_code}\n", "https://remote.test:"+port+"/docs")
	wantOutput(t, o, "T-CODE=502")
	want := "sandgate: refused 1 request: remote.test:" + port + " (host's certificate did not verify); the certificate of remote.test did not verify: signed by an unknown authority"
	if !strings.Contains(o.stderr, want) {
		t.Errorf("the exit summary:\n%s\nwant %q", o.stderr, want)
	}
	if e := findEvent(t, readRequestAudit(t, auditFile), "GET", "/docs", "upstream-tls"); e.Decision != "deny" {
		t.Errorf("the upstream-tls event is not a refusal: %+v", e)
	}
	if _, ok := log.find("GET", "/docs"); ok {
		t.Errorf("the request reached an upstream that did not verify")
	}
}

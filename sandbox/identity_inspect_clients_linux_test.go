//go:build linux

package sandbox

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/trustenv"
)

// inspectJavaClient is Client.java: Java 17's HttpClient GETs args[0] and
// POSTs to args[1], printing both statuses.
const inspectJavaClient = `import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Client {
    public static void main(String[] args) throws Exception {
        HttpClient c = HttpClient.newHttpClient();
        HttpResponse<String> g = c.send(HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.ofString());
        System.out.println("T-JAVA-GET=" + g.statusCode());
        HttpResponse<String> p = c.send(HttpRequest.newBuilder(URI.create(args[1]))
            .POST(HttpRequest.BodyPublishers.ofString("leak=1")).build(), HttpResponse.BodyHandlers.ofString());
        System.out.println("T-JAVA-POST=" + p.statusCode() + " " + p.headers().firstValue("x-proxy-error").orElse(""));
    }
}
`

// inspectClientsScript runs every client against the inspected
// https://remote.test, with no option of its own: the credentialed proxy
// variables and the trust view are all they get. %[1]s: the directory of
// Client.java; %[2]s: the test binary (the Go client).
const inspectClientsScript = `set -u
D=%[1]q; BIN=%[2]q; u=https://remote.test
echo "T-CURL-GET=$(curl -sS --max-time 10 -o /dev/null -w '%%{http_code}' $u/c/curl)"
echo "T-CURL-POST=$(curl -sS --max-time 10 -o /dev/null -w '%%{http_code}' -X POST -d leak=1 $u/c/curl-post)"
git clone -q $u/git/repo.git clone && echo T-GIT-CLONE-OK && cat clone/hello.txt
python3 - $u <<'EOF'
import sys, urllib.request, urllib.error
u = sys.argv[1]
print("T-PYTHON-GET=%%d" %% urllib.request.urlopen(u + "/c/python", timeout=10).status)
try:
    urllib.request.urlopen(urllib.request.Request(u + "/c/python-post", data=b"leak=1", method="POST"), timeout=10)
    print("T-PYTHON-POST=200")
except urllib.error.HTTPError as e:
    print("T-PYTHON-POST=%%d %%s" %% (e.code, e.headers.get("X-Proxy-Error")))
EOF
node -e 'const https = require("https"); const u = process.argv[1];
https.get(u + "/c/node", r => { console.log("T-NODE-GET=" + r.statusCode); r.resume();
  const q = https.request(u + "/c/node-post", { method: "POST" }, r2 => { console.log("T-NODE-POST=" + r2.statusCode + " " + (r2.headers["x-proxy-error"] || "")); r2.resume() });
  q.on("error", e => console.log("T-NODE-ERROR " + e.message)); q.end("leak=1") }).on("error", e => console.log("T-NODE-ERROR " + e.message))' $u
echo "T-GO: $(SANDGATE_SANDBOX_TEST_HELPER=trust-get "$BIN" $u/c/go 2>&1)"
java "$D/Client.java" $u/c/java $u/c/java-post 2>&1 | grep -v '^Picked up JAVA_TOOL_OPTIONS'
echo "T-JAVA-OPTS: $JAVA_TOOL_OPTIONS"
rm -rf clone
exit 0
`

// inspectedGitRepo makes dir/repo.git, a bare repository with one commit
// of hello.txt, for git http-backend.
func inspectedGitRepo(t *testing.T, dir string) {
	t.Helper()
	work := filepath.Join(dir, "work")
	git := func(args ...string) {
		c := exec.Command("git", args...)
		c.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=sgtest", "GIT_AUTHOR_EMAIL=sgtest@example.test",
			"GIT_COMMITTER_NAME=sgtest", "GIT_COMMITTER_EMAIL=sgtest@example.test")
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, b)
		}
	}
	git("init", "-q", "-b", "main", work)
	if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte("sgtest identity inspected clone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("-C", work, "add", "hello.txt")
	git("-C", work, "commit", "-q", "-m", "hello")
	git("clone", "-q", "--bare", work, filepath.Join(dir, "repo.git"))
}

// testInspectClients: on the identity backend (credentialed proxy, the
// transparent path), curl, git (clone), Python's urllib, Node's https (by
// the transparent path), a Go client and Java 17's HttpClient each GET an
// inspected host (--read-only, --read-only-git for git) with no setup of
// their own; every POST is 403 blocked-by-method and never reaches the
// server. The JVM, which cannot give the proxy the run's credentials,
// gets no proxy options and goes by the transparent path. (After
// testTransparent, which gives the namespace its default route.)
func (w *idWorld) testInspectClients(t *testing.T) {
	for _, tool := range []string{"curl", "git", "python3", "node", "java", "bash", "/usr/lib/git-core/git-http-backend"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-test-deps.sh installs it): %v", tool, err)
		}
	}
	roots, cert := inspectTestPKI(t, "remote.test")
	served := t.TempDir()
	inspectedGitRepo(t, served)
	cgiH := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Root: "/git",
		Env: []string{"GIT_PROJECT_ROOT=" + served, "GIT_HTTP_EXPORT_ALL=1"}}
	var mu sync.Mutex
	var seen []string
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+r.UserAgent())
			mu.Unlock()
			if strings.HasPrefix(r.URL.Path, "/git/") {
				cgiH.ServeHTTP(rw, r)
				return
			}
			fmt.Fprintf(rw, "sgtest-identity %s %s\n", r.Method, r.URL.Path)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	pol, err := policy.New(policy.Config{ReadOnly: []string{"remote.test"}, ReadOnlyGit: []string{"remote.test/git/*"}})
	if err != nil {
		t.Fatal(err)
	}
	gate, auth := inspectedGate(t, pol, ln.Addr().String())
	javaDir := filepath.Join(w.base, "inspect-java")
	if err := os.MkdirAll(javaDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(javaDir) })
	if err := os.WriteFile(filepath.Join(javaDir, "Client.java"), []byte(inspectJavaClient), 0o644); err != nil {
		t.Fatal(err)
	}
	sink := &events{}
	spec := w.spec("")
	var env []string
	for _, kv := range spec.Env {
		k, _, _ := strings.Cut(kv, "=")
		// No trust or proxy setting of the test's environment: sandgate's alone.
		if strings.Contains(strings.ToLower(k), "proxy") || k == helperEnv || slices.Contains(trustenv.BundleVars, k) ||
			k == trustenv.NodeVar || k == trustenv.JavaVar || k == "SSL_CERT_DIR" {
			continue
		}
		env = append(env, kv)
	}
	spec.Env = env
	spec.Args = []string{"/bin/bash", "-c", fmt.Sprintf(inspectClientsScript, javaDir, w.bin)}
	spec.Network, spec.Gate, spec.Transparent, spec.Audit = NetworkProxy, gate, true, sink
	spec.Authority, spec.UpstreamRoots, spec.TrustPEM = auth, roots, auth.CertPEM()
	o := sandboxRun(t, spec)
	mu.Lock()
	got := strings.Join(seen, "\n  ")
	mu.Unlock()
	t.Logf("stdout:\n%s\nstderr:\n%s\nthe server saw:\n  %s", o.stdout, o.stderr, got)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("%+v %v", o.res, o.err)
	}
	for _, want := range []string{"T-CURL-GET=200", "T-CURL-POST=403", "T-GIT-CLONE-OK", "sgtest identity inspected clone",
		"T-PYTHON-GET=200", "T-PYTHON-POST=403 blocked-by-method", "T-NODE-GET=200", "T-NODE-POST=403 blocked-by-method",
		"T-GO: sgtest-identity GET /c/go", "T-JAVA-GET=200", "T-JAVA-POST=403 blocked-by-method"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	for _, c := range []string{"curl", "python", "node", "go", "java"} {
		if !strings.Contains(got, "GET /c/"+c+" ") {
			t.Errorf("the server never got %s's GET", c)
		}
		if strings.Contains(got, "/c/"+c+"-post") {
			t.Errorf("%s's refused POST reached the server", c)
		}
	}
	if !strings.Contains(got, "POST /git/repo.git/git-upload-pack git/") {
		t.Errorf("git's upload-pack did not reach the server")
	}
	if opts := line(o.stdout, "T-JAVA-OPTS:"); strings.Contains(opts, "proxyHost") || !strings.Contains(opts, "-Djavax.net.ssl.trustStore=") {
		t.Errorf("the JVM's options: %s; want its trust store and no proxy it cannot authenticate to", opts)
	}
	protos := map[string]string{}
	sink.mu.Lock()
	for _, e := range sink.got {
		if e.Method == "GET" && strings.HasPrefix(e.Path, "/c/") && e.Decision == "allow" {
			protos[strings.TrimPrefix(e.Path, "/c/")] = e.Proto
		}
	}
	sink.mu.Unlock()
	t.Logf("paths of the GETs: %v", protos)
	if protos["java"] != "transparent" || protos["node"] != "transparent" || protos["curl"] != "connect" {
		t.Errorf("the GETs went by %v; want java and node transparent, curl by CONNECT", protos)
	}
}

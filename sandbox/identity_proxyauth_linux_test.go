//go:build linux

package sandbox

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/netroute"
	"github.com/sandgate/sandgate/policy"
)

// javaHTTPClient is a single-file Java program (java Client.java URL) that
// fetches URL with java.net.http.HttpClient and prints the body.
const javaHTTPClient = `import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Client {
    public static void main(String[] args) throws Exception {
        HttpClient c = HttpClient.newHttpClient();
        HttpResponse<String> r = c.send(HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.ofString());
        System.out.println("JAVA-STATUS " + r.statusCode() + " " + r.body().trim());
    }
}
`

// proxyAuthScript clones over smart HTTP through the proxy with the
// run's environment as it is (git sends the credentials first), then with
// GIT_HTTP_PROXY_AUTHMETHOD unset (libcurl's default: wait for the 407),
// and fetches with Java's HttpClient, which the run does not point at the
// proxy: its direct connection takes the transparent path.
const proxyAuthScript = `
git clone -q http://git.test/repo.git "$HOME/first" && grep -q FLEET-REPO "$HOME/first/hello.txt" && echo T-GIT-OK
case "$JAVA_TOOL_OPTIONS" in *proxyHost*) echo T-JAVA-PROXIED;; esac
env -u GIT_HTTP_PROXY_AUTHMETHOD git clone -q http://git2.test/repo.git "$HOME/second" && grep -q FLEET-REPO "$HOME/second/hello.txt" && echo T-GIT-CHALLENGED-OK
cat > "$HOME/Client.java" <<'JAVA'
` + javaHTTPClient + `JAVA
java "$HOME/Client.java" http://java.test/ 2>&1
exit 0
`

// testProxyAuthClients: git sends the run's proxy credentials with its
// first request (no 407, no refusal in the audit); a git that waits for
// the challenge still succeeds, and its 407 is audited as auth-challenge
// but is no refusal in the summary; Java's HttpClient, which cannot
// present proxy credentials, reaches an allowed name through the
// transparent path. (After testTransparent, which gives the namespace its
// default route.)
func (w *idWorld) testProxyAuthClients(t *testing.T) {
	for _, tool := range []string{"git", "java", "/usr/lib/git-core/git-http-backend"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-test-deps.sh installs it): %v", tool, err)
		}
	}
	if err := netroute.DefaultViaLoopback(""); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	bareRepo(t, root, "FLEET-REPO\n")
	mux := http.NewServeMux()
	mux.Handle("/repo.git/", &cgi.Handler{
		Path: "/usr/lib/git-core/git-http-backend",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "JAVA-HTTP\n") })
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	pol, err := policy.New(policy.Config{Allow: []string{"git.test:80", "git2.test:80", "java.test:80"}})
	if err != nil {
		t.Fatal(err)
	}
	gate := &egress.Gate{
		Policy:     pol,
		Resolver:   &loggingResolver{a: netip.MustParseAddr("192.0.2.10")},
		LocalAddrs: func() []netip.Addr { return nil },
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, web.Listener.Addr().String())
		},
	}
	sink, summary := &events{}, &audit.Summary{}
	spec := w.spec("")
	spec.Args = []string{"/bin/bash", "-c", proxyAuthScript}
	spec.Network, spec.Gate, spec.Transparent, spec.Audit = NetworkProxy, gate, true, audit.Multi(sink, summary)
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	for _, want := range []string{"T-GIT-OK", "T-GIT-CHALLENGED-OK", "JAVA-STATUS 200 JAVA-HTTP"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if strings.Contains(o.stdout, "T-JAVA-PROXIED") {
		t.Error("the JVM was pointed at the proxy, whose credentials it cannot send")
	}
	challenges := map[string]int{}
	sink.mu.Lock()
	for _, e := range sink.got {
		switch e.Reason {
		case audit.ReasonAuthChallenge:
			challenges[e.Host]++
		case audit.ReasonAuthFailed:
			t.Errorf("audit event %+v: wrong credentials", e)
		}
	}
	javaTransparent := false
	for _, e := range sink.got {
		javaTransparent = javaTransparent || e.Proto == "transparent" && e.Host == "java.test" && e.Decision == audit.DecisionAllow
	}
	sink.mu.Unlock()
	if challenges["git.test"] != 0 || challenges["git2.test"] == 0 {
		t.Errorf("407 challenges by host %v: want none for git.test (credentials sent first) and some for git2.test", challenges)
	}
	if !javaTransparent {
		t.Error("no allowed transparent event for java.test")
	}
	if rs := summary.Refusals(); len(rs) != 0 {
		t.Errorf("the summary counts refusals %+v; a challenge that was answered is none", rs)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s\naudit: %+v", o.stdout, o.stderr, sink.got)
	}
}

// testNonLocalRejected: with a default route (so connect reaches the
// rules) and no transparent path, a direct TCP connection from the offline
// identity to a non-local address fails at once, reset by the rules, over
// IPv4 and IPv6; it never waits for the dial timeout (3 s, after which
// the helper would print a timeout instead of the errno).
func (w *idWorld) testNonLocalRejected(t *testing.T) {
	if err := netroute.DefaultViaLoopback(""); err != nil {
		t.Fatal(err)
	}
	v4, v6 := "192.0.2.1:80", "[2001:db8::1]:80"
	spec := w.spec("id-net", "direct="+v4, "direct="+v6)
	spec.Network, spec.Gate = NetworkProxy, denyAllGate()
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout, "direct "+v4+" ECONNREFUSED\n", "direct "+v6+" ECONNREFUSED\n")
}

// bareRepo makes dir/repo.git holding one commit with hello.txt.
func bareRepo(t *testing.T, dir, content string) {
	t.Helper()
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	id := []string{"-c", "user.name=sgtest", "-c", "user.email=sgtest@example.test", "-c", "init.defaultBranch=main"}
	for _, argv := range [][]string{
		append(append([]string{"git"}, id...), "init", "-q"),
		{"git", "add", "hello.txt"},
		append(append([]string{"git"}, id...), "commit", "-q", "-m", "sgtest"),
		{"git", "clone", "-q", "--bare", work, filepath.Join(dir, "repo.git")},
	} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
}

//go:build linux

package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandgate/sandgate/trustenv"
)

// Real clients trust Spec.TrustPEM with no flag of their own: inside the
// sandbox a TLS server (the test binary) serves a certificate for
// localhost and 127.0.0.1 signed by a CA of the test's, given only as
// TrustPEM; curl, Python's urllib, Node's https, a Go client, Java 17's
// HttpClient and git connect to it through the view's system bundles and
// the variables alone.

func init() {
	// The "trust-" helpers; the sandbox init is left to MaybeInit.
	if len(os.Args) == 0 || strings.HasPrefix(os.Args[0], "sandgate:") {
		return
	}
	switch os.Getenv(helperEnv) {
	case "trust-server":
		os.Exit(trustServer(os.Args[1:]))
	case "trust-get":
		os.Exit(trustGet(os.Args[1:]))
	}
}

// trustServer serves HTTPS on args[2] with the certificate args[0] and
// key args[1], answering "trusted-ok PATH" and printing each request's
// path and User-Agent; it creates args[3] once it listens.
func trustServer(args []string) int {
	cert, err := tls.LoadX509KeyPair(args[0], args[1])
	if err != nil {
		fmt.Println("server:", err)
		return 1
	}
	ln, err := tls.Listen("tcp", args[2], &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		fmt.Println("server:", err)
		return 1
	}
	if err := os.WriteFile(args[3], nil, 0o644); err != nil {
		fmt.Println("server:", err)
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("SEEN %s %s\n", r.URL.Path, r.UserAgent())
		fmt.Fprintf(w, "trusted-ok %s\n", r.URL.Path)
	}), ReadHeaderTimeout: 10 * time.Second}
	// The run ends the server (the sandbox's end kills it).
	_ = srv.Serve(ln)
	return 0
}

// trustGet prints the body of an HTTPS GET of args[0] with Go's default
// client.
func trustGet(args []string) int {
	resp, err := http.Get(args[0])
	if err != nil {
		fmt.Println("go error:", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Print(string(b))
	return 0
}

// trustCA is a test CA and a leaf for localhost and 127.0.0.1, written to
// dir (leaf.pem, leaf.key); it returns the CA's PEM.
func trustCA(t *testing.T, dir string) []byte {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sandgate trust test CA " + randHex(4)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*pem.Block{"leaf.pem": {Type: "CERTIFICATE", Bytes: leafDER}, "leaf.key": {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// javaClient is Client.java: java 17's HttpClient, default SSLContext.
const javaClient = `import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Client {
    public static void main(String[] args) throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(
            HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.ofString());
        System.out.print(r.body());
    }
}
`

// trustScript starts the server and runs every client with no flag.
// %[1]s: the directory of the server's files and Client.java; %[2]s: the
// test binary.
const trustScript = `set -u
D=%[1]q; BIN=%[2]q; u=https://localhost:8443
SANDGATE_SANDBOX_TEST_HELPER=trust-server "$BIN" "$D/leaf.pem" "$D/leaf.key" 127.0.0.1:8443 "$PWD/trust-ready" &
for i in $(seq 400); do [ -e trust-ready ] && break; sleep 0.05; done
rm -f trust-ready
echo "CURL: $(curl -sS $u/curl 2>&1)"
echo "PYTHON: $(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode(), end="")' $u/python 2>&1)"
echo "NODE: $(node -e 'require("https").get(process.argv[1], r => r.pipe(process.stdout)).on("error", e => { console.log("node error", e.message); process.exit(1) })' $u/node 2>&1)"
echo "GO: $(SANDGATE_SANDBOX_TEST_HELPER=trust-get "$BIN" $u/go 2>&1)"
echo "JAVA: $(java "$D/Client.java" $u/java 2>&1 | grep -v '^Picked up JAVA_TOOL_OPTIONS')"
echo "GIT: $(git ls-remote https://127.0.0.1:8443/repo.git 2>&1 | tr '\n' ' ')"
echo "JAVA-OPTS: $JAVA_TOOL_OPTIONS"
# The view alone: no variable.
unset SSL_CERT_FILE CURL_CA_BUNDLE JAVA_TOOL_OPTIONS
echo "CURL-VIEW: $(curl -sS $u/curl-view 2>&1)"
echo "GO-VIEW: $(SANDGATE_SANDBOX_TEST_HELPER=trust-get "$BIN" $u/go-view 2>&1)"
echo "JAVA-VIEW: $(java "$D/Client.java" $u/java-view 2>&1)"
echo "BUNDLE-CERTS: $(grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt)"
echo "WRITE-BUNDLE: $( (echo x >> /etc/ssl/certs/ca-certificates.crt) 2>&1 && echo written)"
echo "WRITE-DIR: $( (touch "$(dirname "$NODE_EXTRA_CA_CERTS")/planted") 2>&1 && echo written)"
echo "TRUST-FILE $NODE_EXTRA_CA_CERTS"
kill %%1
`

// needTrustClients fails the test when a client is not installed
// (scripts/install-test-deps.sh installs them).
func needTrustClients(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"curl", "python3", "node", "java", "git", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-test-deps.sh installs it): %v", tool, err)
		}
	}
}

// hostBundles hashes the host's system trust bundles and stores.
func hostBundles(t *testing.T) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, p := range append(append([]string{}, trustenv.SystemBundles...), trustenv.SystemTrustStores...) {
		if b, err := os.ReadFile(p); err == nil {
			out[p] = sha256.Sum256(b)
		}
	}
	return out
}

// checkTrustClients runs the clients in spec (its Dir the working
// directory, dir the files' directory, bin the test binary as CMD sees
// it) and checks each got past TLS, that the view's bundle and the trust
// files are read-only, and that the host's files are unchanged and the
// run's trust files gone afterwards.
func checkTrustClients(t *testing.T, spec Spec, dir, bin string) {
	t.Helper()
	needTrustClients(t)
	spec.TrustPEM = trustCA(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "Client.java"), []byte(javaClient), 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range spec.Env {
		k, _, _ := strings.Cut(kv, "=")
		// No trust setting of the test's environment: sandgate's alone.
		if strings.HasSuffix(strings.ToLower(k), "_proxy") || k == helperEnv || slices.Contains(trustenv.BundleVars, k) ||
			k == trustenv.NodeVar || k == trustenv.JavaVar || k == "SSL_CERT_DIR" || k == "NIX_SSL_CERT_FILE" {
			continue
		}
		env = append(env, kv)
	}
	spec.Env = env
	spec.Args = []string{"/bin/bash", "-c", fmt.Sprintf(trustScript, dir, bin)}
	before := hostBundles(t)
	o := sandboxRun(t, spec)
	t.Logf("stdout:\n%s\nstderr:\n%s\nnotes: %q", o.stdout, o.stderr, o.notes)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("run: %+v %v", o.res, o.err)
	}
	for _, c := range []string{"CURL", "PYTHON", "NODE", "GO", "JAVA", "CURL-VIEW", "GO-VIEW", "JAVA-VIEW"} {
		path := "/" + strings.ToLower(c)
		if !strings.Contains(o.stdout, c+": trusted-ok "+path+"\n") {
			t.Errorf("%s did not trust the server: %s", c, line(o.stdout, c+":"))
		}
	}
	opts := line(o.stdout, "JAVA-OPTS:")
	if !strings.Contains(opts, "-Djavax.net.ssl.trustStore=") || spec.Network == NetworkProxy && !strings.Contains(opts, "-Dhttps.proxyHost=") {
		t.Errorf("JAVA_TOOL_OPTIONS: %s", opts)
	}
	// git got past TLS: the server saw its request, and its error is not
	// a certificate error.
	gitLine := line(o.stdout, "GIT:")
	if !regexp.MustCompile(`(?m)^SEEN /repo.git/info/refs git/`).MatchString(o.stdout) || regexp.MustCompile(`(?i)certificate|ssl|tls`).MatchString(gitLine) {
		t.Errorf("git did not get past TLS: %s", gitLine)
	}
	if n := line(o.stdout, "BUNDLE-CERTS:"); n == "BUNDLE-CERTS: 0" || n == "" {
		t.Errorf("the view's system bundle: %s", n)
	}
	for _, w := range []string{"WRITE-BUNDLE:", "WRITE-DIR:"} {
		if l := line(o.stdout, w); strings.Contains(l, "written") || !strings.Contains(l, "Read-only") && !strings.Contains(l, "Permission denied") {
			t.Errorf("CMD could write: %s", l)
		}
	}
	if after := hostBundles(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the host's trust bundles changed: %v, then %v", before, after)
	}
	f := strings.TrimPrefix(line(o.stdout, "TRUST-FILE "), "TRUST-FILE ")
	if f == "" || !strings.Contains(f, "sandgate-trust-") {
		t.Fatalf("NODE_EXTRA_CA_CERTS in the run: %q", f)
	}
	if _, err := os.Stat(filepath.Dir(f)); !os.IsNotExist(err) {
		t.Errorf("the run's trust files are still there: %s: %v", filepath.Dir(f), err)
	}
}

// line is the first line of s starting with prefix ("" when none).
func line(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestTrustClients: the netns backend, in the default view and with
// --fs host, and as an inspecting run would be: the proxy and the
// transparent path (whose JAVA_TOOL_OPTIONS and views go with the trust
// ones; the server is on the sandbox's loopback, which NO_PROXY names).
func TestTrustClients(t *testing.T) {
	for _, c := range []struct {
		name        string
		view, proxy bool
	}{{"view", true, false}, {"host", false, false}, {"proxy", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			f := newViewFixture(t)
			spec := Spec{Env: os.Environ(), Network: NetworkNone, Backend: BackendNetns, Dir: f.ws}
			if c.view {
				spec.View = f.profile(f.ws, testBinary())
			}
			if c.proxy {
				spec.Network, spec.Gate, spec.Transparent = NetworkProxy, denyAllGate(), true
			}
			checkTrustClients(t, spec, f.outside, testBinary())
		})
	}
}

// testTrustClients: the identity backend (the online user, whose
// loopback is the test namespace's), in the default view and with --fs
// host.
func (w *idWorld) testTrustClients(t *testing.T) {
	for _, view := range []bool{true, false} {
		t.Run(fmt.Sprintf("view=%v", view), func(t *testing.T) {
			f := newViewFixture(t)
			spec := w.spec("")
			spec.Network = NetworkFull
			if view {
				spec.View = f.profile(w.work, w.bin)
			}
			defer os.Remove(filepath.Join(w.work, "trust-ready"))
			checkTrustClients(t, spec, f.outside, w.bin)
		})
	}
}

// TestTrustRefused: TrustPEM that is not only certificates fails the run
// before anything starts.
func TestTrustRefused(t *testing.T) {
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})
	for _, c := range []struct {
		name string
		pem  []byte
		want string
	}{
		{"key", key, `"PRIVATE KEY", not a CERTIFICATE`},
		{"nothing", []byte("x"), "no PEM CERTIFICATE block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := runNoCheck(Spec{Args: []string{"true"}, Network: NetworkNone, Backend: BackendNetns, TrustPEM: c.pem})
			if o.err == nil || !strings.Contains(o.err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", o.err, c.want)
			}
		})
	}
}

// TestReadTrustFile: only regular files, relative ones from CMD's
// directory; a FIFO does not block.
func TestReadTrustFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, want, err string
	}{
		{"ca.pem", "pem", ""},
		{filepath.Join(dir, "ca.pem"), "pem", ""},
		{fifo, "", "not a regular file"},
		{dir, "", "not a regular file"},
		{"absent", "", "no such file"},
	} {
		got, err := readTrustFile(dir, c.name)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %q, %v", c.name, got, err)
		}
	}
}

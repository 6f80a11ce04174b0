package secrets

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// forwarder is a minimal plain-HTTP forward proxy for the real-client
// tests: it runs Apply as sandgate's proxy will, answers 403 with
// X-Proxy-Error: secret-not-bound on ErrNotBound, and forwards otherwise.
func forwarder(t *testing.T, s *Set) *httptest.Server {
	t.Helper()
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, portText, err := net.SplitHostPort(r.URL.Host)
		if err != nil {
			host, portText = r.URL.Host, "80"
		}
		port, _ := strconv.Atoi(portText)
		if err := s.Apply(host, uint16(port), r); err != nil {
			if errors.Is(err, ErrNotBound) {
				w.Header().Set("X-Proxy-Error", "secret-not-bound")
			}
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		r.RequestURI = ""
		resp, err := tr.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// recorder is an upstream that asks for Basic credentials when a request
// has none (as a git host does) and records every Authorization and query
// it is sent.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.seen = append(rc.seen, r.Header.Get("Authorization")+" ?"+r.URL.RawQuery+" "+r.Header.Get("X-Api-Key"))
	rc.mu.Unlock()
	if r.Header.Get("Authorization") == "" && r.URL.Query().Get("access_token") == "" && r.Header.Get("X-Api-Key") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		http.Error(w, "credentials, please", http.StatusUnauthorized)
		return
	}
	http.Error(w, "no such repository", http.StatusNotFound)
}

func (rc *recorder) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.seen = nil
}

func (rc *recorder) all() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return strings.Join(rc.seen, "\n")
}

// TestRealClients runs git and curl through a forwarder that applies the
// set: the bound upstream (127.0.0.1) sees the real value in the shape each
// client sends; nothing reaches an unbound upstream ([::1]).
func TestRealClients(t *testing.T) {
	git, errGit := exec.LookPath("git")
	curl, errCurl := exec.LookPath("curl")
	if errGit != nil || errCurl != nil {
		if os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("git and curl are needed (scripts/install-test-deps.sh): %v %v", errGit, errCurl)
		}
		t.Skipf("git or curl missing: %v %v", errGit, errCurl)
	}
	bound := &recorder{}
	up := httptest.NewServer(bound)
	t.Cleanup(up.Close)
	other := &recorder{}
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	otherSrv := &httptest.Server{Listener: l, Config: &http.Server{Handler: other}}
	otherSrv.Start()
	t.Cleanup(otherSrv.Close)

	s, err := New(testRand(9), Binding{Name: "GITHUB_TOKEN", Value: ghValue, Hosts: hosts(t, "127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	ph := placeholderOf(t, s, "GITHUB_TOKEN")
	proxyURL := forwarder(t, s).URL
	upURL, _ := url.Parse(up.URL)
	otherURL, _ := url.Parse(otherSrv.URL)

	run := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "http_proxy="+proxyURL, "HTTP_PROXY="+proxyURL, "no_proxy=", "NO_PROXY=",
			"GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir(), "GITHUB_TOKEN="+ph)
		cmd.Dir = t.TempDir()
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	basicReal := "Basic " + b64("x-access-token:"+ghValue)
	tests := []struct {
		name string
		cmd  []string
		want string // in what the bound upstream saw
	}{
		{"git clone with the token in the URL", []string{git, "clone", "http://x-access-token:" + ph + "@" + upURL.Host + "/acme/repo.git"}, basicReal},
		{"curl Bearer", []string{curl, "-sS", "-H", "Authorization: Bearer " + ph, up.URL + "/user"}, "Bearer " + ghValue},
		{"curl token", []string{curl, "-sS", "-H", "Authorization: token " + ph, up.URL + "/user"}, "token " + ghValue},
		{"curl -u", []string{curl, "-sS", "-u", "x-access-token:" + ph, up.URL + "/user"}, basicReal},
		{"curl x-api-key", []string{curl, "-sS", "-H", "x-api-key: " + ph, up.URL + "/v1"}, " " + ghValue},
		{"curl access_token", []string{curl, "-sS", up.URL + "/user?access_token=" + ph}, "?access_token=" + ghValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bound.reset()
			out := run(tt.cmd[0], tt.cmd[1:]...)
			if seen := bound.all(); !strings.Contains(seen, tt.want) || strings.Contains(seen, ph) {
				t.Errorf("the bound upstream saw\n%s\nwant %q and no placeholder; client said:\n%s", seen, tt.want, out)
			}
			// The same request to the unbound upstream is refused before
			// anything reaches it.
			args := make([]string, len(tt.cmd)-1)
			for i, a := range tt.cmd[1:] {
				args[i] = strings.ReplaceAll(a, upURL.Host, otherURL.Host)
			}
			out = run(tt.cmd[0], args...)
			if seen := other.all(); strings.Contains(seen, ph) || strings.Contains(seen, ghValue) {
				t.Errorf("the unbound upstream saw a placeholder or the value:\n%s", seen)
			}
			if !strings.Contains(out, "not bound") && !strings.Contains(out, "403") {
				t.Errorf("the client did not get the refusal: %s", out)
			}
		})
	}
}

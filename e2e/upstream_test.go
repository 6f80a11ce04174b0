//go:build linux

package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandgate/sandgate/internal/squidtest"
)

// TestRunUpstreamProxy runs `sandgate run --upstream-proxy` against a real
// squid on the host namespace's loopback that wants credentials, resolves
// the fake internet's names from its own hosts file and refuses one of them
// by its own rules. By name (the default) squid is asked for the name and
// its rules apply after sandgate's; a name sandgate refuses never reaches
// squid; with --upstream-send address squid is asked for the address
// sandgate resolved and checked. The upstream's password is never printed
// nor audited.
func TestRunUpstreamProxy(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	sq := squidtest.Start(t, squidtest.Config{
		Wrap:    []string{"ip", "netns", "exec", w.hostNS},
		Hosts:   map[string]string{"remote.test": remoteV4, "blocked.test": remoteV4},
		Ports:   []uint16{80, 22},
		Blocked: []string{"blocked.test"},
		Auth:    true,
	})
	const secret = "upstream-Pa55-secret"
	upURL := "http://alice:" + secret + "@" + sq.Addr
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{
		"--no-transparent", "--upstream-proxy", upURL, "--audit", auditFile,
		"--allow", "remote.test", "--allow", "blocked.test",
	}
	cs := []chk{
		succeeds("http", "http://remote.test/").with("sgtest-remote proto=http host=remote.test"),
		succeeds("connect", "remote.test:22").with("SSH-2.0-sgtest-banner"),
		// squid's own rule refuses it after sandgate allowed it.
		fails("http", "http://blocked.test/").with("502", "403", "the upstream's own rules"),
		// sandgate's refusal: squid never hears of it.
		fails("http", "http://evil.test/").with("403"),
	}
	o := w.runSandgate(t, flags, probeArgv(cs)...)
	expectProbes(t, o, cs)
	log := sq.WaitLog(t, "CONNECT remote.test:80")
	sq.WaitLog(t, "blocked.test")
	if strings.Contains(log, "evil.test") {
		t.Errorf("squid heard of a name sandgate refused:\n%s", log)
	}
	audit, _ := os.ReadFile(auditFile)
	for what, text := range map[string]string{"stderr": o.stderr, "stdout": o.stdout, "audit": string(audit)} {
		if strings.Contains(text, secret) {
			t.Errorf("the upstream's password is in sandgate's %s:\n%s", what, text)
		}
	}

	// By address: sandgate resolves and checks, squid gets the address.
	cs = []chk{succeeds("http", "http://remote.test/").with("sgtest-remote proto=http")}
	o = w.runSandgate(t, []string{"--no-transparent", "--upstream-proxy", upURL, "--upstream-send", "address", "--allow", "remote.test"}, probeArgv(cs)...)
	expectProbes(t, o, cs)
	byAddr := func(l string) bool {
		return strings.Contains(l, "CONNECT "+remoteV4+":80") || strings.Contains(l, "CONNECT ["+remoteV6+"]:80")
	}
	for end := time.Now().Add(5 * time.Second); !byAddr(sq.Log()) && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if log = sq.Log(); !byAddr(log) {
		t.Errorf("by address: squid was not asked for remote.test's address:\n%s", log)
	}

	// The transparent path: a client that ignores the proxy variables is
	// decided by the same policy and connected through the upstream.
	before := strings.Count(sq.Log(), "CONNECT remote.test:80 alice")
	o = w.runSandgate(t, []string{"--upstream-proxy", upURL, "--allow", "remote.test"},
		"/bin/sh", "-c", "curl -sS --max-time 10 --noproxy '*' http://remote.test/ && echo T-TRANSPARENT-OK")
	if o.code != 0 || !strings.Contains(o.stdout, "sgtest-remote proto=http") || !strings.Contains(o.stdout, "T-TRANSPARENT-OK") {
		t.Errorf("transparent curl through the upstream: exit %d\n%s\n%s", o.code, o.stdout, o.stderr)
	}
	for end := time.Now().Add(5 * time.Second); strings.Count(sq.Log(), "CONNECT remote.test:80 alice") <= before && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Count(sq.Log(), "CONNECT remote.test:80 alice") <= before {
		t.Errorf("the transparent connection did not go through squid:\n%s", sq.Log())
	}

	// Without credentials squid says 407, and sandgate says so.
	cs = []chk{fails("http", "http://remote.test/").with("407", "credentials")}
	o = w.runSandgate(t, []string{"--no-transparent", "--upstream-proxy", "http://" + sq.Addr, "--allow", "remote.test"}, probeArgv(cs)...)
	expectProbes(t, o, cs)
}

// TestProxyUpstreamFromConfig runs `sandgate proxy` with [proxy] upstream
// in its configuration file (credentials included) against a real squid:
// curl through sandgate reaches the allowed name through squid by name, a
// refused name never reaches squid, and sandgate's own line about the
// upstream names it without its password.
func TestProxyUpstreamFromConfig(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is needed (scripts/install-test-deps.sh installs it): %v", err)
	}
	sq := squidtest.Start(t, squidtest.Config{
		Wrap:  []string{"ip", "netns", "exec", w.hostNS},
		Hosts: map[string]string{"remote.test": remoteV4},
		Ports: []uint16{80},
		Auth:  true,
	})
	const secret = "cfg-Upstream-secret"
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("[network]\nallowed_domains = [\"remote.test\"]\n\n[proxy]\nupstream = \"http://bob:"+secret+"@"+sq.Addr+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(40000))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c := w.hostCmd(ctx, nil, newHome(t, nil), sandgateBin, "proxy", "--config", cfg, "--http", listen, "--socks", "")
	stderr := newLines()
	c.Stderr = stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); stderr.end(); close(done) }()
	t.Cleanup(func() { _ = c.Process.Kill(); <-done })
	stderr.waitFor(t, "HTTP proxy listening on", 20*time.Second)

	o := w.runHost(t, "curl", "-sS", "--max-time", "10", "-x", "http://"+listen, "http://remote.test/")
	if o.code != 0 || !strings.Contains(o.stdout, "sgtest-remote proto=http host=remote.test") {
		t.Errorf("curl through sandgate and squid: exit %d\n%s\n%s", o.code, o.stdout, o.stderr)
	}
	o = w.runHost(t, "curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://"+listen, "http://evil.test/")
	if o.stdout != "403" {
		t.Errorf("curl to a refused name: %q, want 403", o.stdout)
	}
	log := sq.WaitLog(t, "CONNECT remote.test:80 bob")
	if strings.Contains(log, "evil.test") {
		t.Errorf("squid heard of a name sandgate refused:\n%s", log)
	}
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-done
	out := stderr.String()
	if !strings.Contains(out, "through upstream proxy http://"+sq.Addr+", by host name") || strings.Contains(out, secret) {
		t.Errorf("sandgate proxy's stderr should name the upstream without its password:\n%s", out)
	}
}

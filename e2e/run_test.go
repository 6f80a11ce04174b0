//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// auditEvent is the part of an audit JSON Lines record the tests look at.
type auditEvent struct {
	Proto    string `json:"proto"`
	Host     string `json:"host"`
	Port     uint16 `json:"port"`
	Dialed   string `json:"dialed"`
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
}

// readAudit parses the audit file at path.
func readAudit(t *testing.T, path string) []auditEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("audit file: %v", err)
	}
	defer f.Close()
	var evs []auditEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// findAudit returns the first event for host:port, or fails the test.
func findAudit(t *testing.T, evs []auditEvent, host string, port uint16, decision, reasonPrefix string) {
	t.Helper()
	for _, e := range evs {
		if e.Host == host && e.Port == port {
			if e.Decision != decision || !strings.HasPrefix(e.Reason, reasonPrefix) {
				t.Errorf("audit for %s:%d: decision %q reason %q, want %q %q…", host, port, e.Decision, e.Reason, decision, reasonPrefix)
			}
			return
		}
	}
	t.Errorf("no audit event for %s:%d in %+v", host, port, evs)
}

// TestRunProxy is the main end-to-end check of `sandgate run` with the
// default network mode: from inside the sandbox, allowed HTTP (v4 and v6),
// HTTPS through CONNECT, SOCKS5 by name and a raw TCP stream to port 22 work;
// direct TCP, UDP and ICMP (v4 and v6), packet sockets, DNS, the host's
// loopback and LAN services, the host's unix socket and ptrace all fail;
// refused requests are in the audit file and the exit summary, and a denied
// name never reached the DNS server.
func TestRunProxy(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	flags := []string{
		// The proxy alone: direct TCP and DNS must then fail outright
		// (TestRunTransparent covers the default, where they are decided).
		"--no-transparent",
		"--allow", "remote.test", "--allow", "remote4.test", "--allow", "remote6.test",
		"--allow", "[" + remoteV6 + "]:80",
		// Allowed names that resolve to the host's loopback and LAN address:
		// the proxy must still refuse them.
		"--allow", "loopy.test", "--allow", "hostlan.test",
		// Deny wins over allow.
		"--allow", "denied.test", "--deny", "denied.test",
		"--audit", auditFile,
	}
	cs := []chk{
		// Through the proxy, by name and allowed IP literal, v4 and v6.
		succeeds("http", "http://remote.test/").with("sgtest-remote proto=http host=remote.test"),
		succeeds("http", "http://remote4.test/").with("local=" + remoteV4 + ":80"),
		succeeds("http", "http://remote6.test/").with("local=[" + remoteV6 + "]:80"),
		succeeds("http", "http://["+remoteV6+"]/").with("local=[" + remoteV6 + "]:80"),
		succeeds("https", "https://remote4.test/", w.caFile).with("proto=https", "local="+remoteV4+":443"),
		succeeds("https", "https://remote6.test/", w.caFile).with("proto=https", "local=["+remoteV6+"]:443"),
		succeeds("socks5", "remote.test:80").with("sgtest-remote proto=http"),
		succeeds("socks5", "remote4.test:22").with("SSH-2.0-sgtest-banner"),
		succeeds("socks5", "remote6.test:22").with("SSH-2.0-sgtest-banner"),
		succeeds("connect", "remote.test:22").with("SSH-2.0-sgtest-banner"),
		succeeds("env", "HTTP_PROXY").with("127.0.0.1"),
		succeeds("env", "HTTPS_PROXY").with("127.0.0.1"),
		succeeds("env", "ALL_PROXY").with("socks5h://127.0.0.1"),
		// The caller's own proxy variables are replaced, not merged.
		succeeds("env", "http_proxy").with("http://127.0.0.1:"),
		succeeds("env", "https_proxy").with("http://127.0.0.1:"),
		succeeds("env", "all_proxy").with("socks5h://127.0.0.1:"),
		succeeds("env", "NO_PROXY").with("localhost,127.0.0.1,::1"),
		succeeds("loopback"),
		succeeds("nocaps"),

		// Refused by the proxy.
		fails("http", "http://evil.test/").with("403"),
		fails("connect", "evil.test:443").with("403"),
		fails("socks5", "evil2.test:22").with("socks reply 2"),
		fails("http", "http://denied.test/").with("403"),
		fails("http", "http://"+remoteV4+"/").with("403"),
		fails("socks5", remoteV4+":22"),
		fails("http", "http://loopy.test/").with("403"),
		fails("http", "http://hostlan.test/").with("403"),
		fails("http", "http://"+w.hostLAN4+"/").with("403"),

		// Around the proxy: nothing.
		fails("tcp", remoteV4+":80"),
		fails("tcp", "["+remoteV6+"]:80"),
		fails("tcp", remoteV4+":22"),
		fails("udp", remoteV4+":9"),
		fails("udp", "["+remoteV6+"]:9"),
		fails("udp", dnsV4+":53"),
		fails("tcp", dnsV4+":53"),
		fails("resolve", "remote.test"),
		fails("icmp", remoteV4),
		fails("icmp", remoteV6),
		fails("packet"),
		fails("tcp", w.hostLoop4),
		fails("tcp", w.hostLoop6),
		fails("tcp", w.hostLAN4),
		fails("tcp", w.hostLAN6),
		fails("unix", w.hostSock),
		fails("unixsocket"),
		fails("iouring"),
		fails("ptrace-all"),
	}
	callerEnv := []string{"HTTP_PROXY=http://198.51.100.99:3128", "http_proxy=http://198.51.100.99:3128",
		"https_proxy=http://198.51.100.99:3128", "all_proxy=socks5://198.51.100.99:1080", "NO_PROXY=*"}
	o := w.runSandgateEnv(t, callerEnv, flags, probeArgv(append(cs, succeeds("procs")))...)
	for _, r := range o.probes {
		if r.Check == "env" && (strings.Contains(r.Detail, "198.51.100.99") || r.Detail == "*") {
			t.Errorf("the caller's proxy variable leaked into the sandbox: %s=%s", r.Args[0], r.Detail)
		}
	}
	expectProbes(t, o, append(cs, succeeds("procs")))
	if n := len(o.probes); n > 0 {
		procs := strings.Fields(o.probes[n-1].Detail)
		if len(procs) > 4 {
			t.Errorf("the sandbox sees %d processes, want only its own: %v", len(procs), procs)
		}
	}

	// The exit summary names the refusals, once, on stderr.
	if !strings.Contains(o.stderr, "sandgate: refused") || !strings.Contains(o.stderr, "evil.test:80") ||
		!strings.Contains(o.stderr, "evil.test:443") || !strings.Contains(o.stderr, "evil2.test:22") {
		t.Errorf("stderr lacks the refusal summary naming evil.test:80, evil.test:443 and evil2.test:22:\n%s", o.stderr)
	}

	evs := readAudit(t, auditFile)
	findAudit(t, evs, "evil.test", 80, "deny", "not-allowed")
	findAudit(t, evs, "evil.test", 443, "deny", "not-allowed")
	findAudit(t, evs, "evil2.test", 22, "deny", "not-allowed")
	findAudit(t, evs, "denied.test", 80, "deny", "denied")
	findAudit(t, evs, "loopy.test", 80, "deny", "address-class:loopback")
	findAudit(t, evs, "hostlan.test", 80, "deny", "address-class")
	findAudit(t, evs, remoteV4, 80, "deny", "")
	findAudit(t, evs, "remote4.test", 80, "allow", "")
	findAudit(t, evs, "remote6.test", 22, "allow", "")

	// Denied names never reach a resolver; allowed ones do (which shows the
	// log works).
	for _, name := range []string{"evil.test", "evil2.test", "denied.test"} {
		if w.dns.asked(name) {
			t.Errorf("the DNS server was asked about the refused name %s", name)
		}
	}
	for _, name := range []string{"remote4.test", "loopy.test", "hostlan.test"} {
		if !w.dns.asked(name) {
			t.Errorf("the DNS server never saw %s; it saw %v", name, w.dns.log())
		}
	}
}

// TestRunQuietWhenNothingRefused checks that sandgate prints nothing of its
// own when nothing was refused, and nothing with --quiet when something was.
func TestRunQuietWhenNothingRefused(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	t.Run("nothing-refused", func(t *testing.T) {
		t.Parallel()
		cs := []chk{succeeds("http", "http://remote4.test/").with("sgtest-remote")}
		o := w.runSandgate(t, []string{"--allow", "remote4.test"}, probeArgv(cs)...)
		expectProbes(t, o, cs)
		if o.stderr != "" {
			t.Errorf("stderr is not empty: %q", o.stderr)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		t.Parallel()
		cs := []chk{fails("http", "http://evil.test/").with("403")}
		o := w.runSandgate(t, []string{"--quiet", "--allow", "remote4.test"}, probeArgv(cs)...)
		expectProbes(t, o, cs)
		if o.stderr != "" {
			t.Errorf("stderr is not empty with --quiet: %q", o.stderr)
		}
	})
}

// TestRunNetworkNone checks --network none: no proxy, no network, only the
// sandbox's own loopback.
func TestRunNetworkNone(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	cs := []chk{
		succeeds("loopback"),
		succeeds("nocaps"),
		fails("env", "HTTP_PROXY"),
		fails("env", "ALL_PROXY"),
		fails("tcp", remoteV4+":80"),
		fails("tcp", "["+remoteV6+"]:80"),
		fails("udp", remoteV4+":9"),
		fails("icmp", remoteV4),
		fails("packet"),
		fails("tcp", w.hostLoop4),
		fails("tcp", w.hostLAN4),
		fails("unix", w.hostSock),
	}
	o := w.runSandgate(t, []string{"--network", "none", "--allow", "remote.test"}, probeArgv(cs)...)
	expectProbes(t, o, cs)
}

// TestRunNetworkFull checks --network full: the host's network directly,
// without proxy variables, but still without capabilities.
func TestRunNetworkFull(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	cs := []chk{
		succeeds("tcp", remoteV4+":80"),
		succeeds("tcp", "["+remoteV6+"]:80"),
		succeeds("udp", remoteV4+":9"),
		succeeds("resolve", "remote.test").with(remoteV4),
		succeeds("http", "http://remote4.test/").with("local=" + remoteV4 + ":80"),
		succeeds("nocaps"),
		fails("env", "HTTP_PROXY"),
		fails("env", "ALL_PROXY"),
	}
	o := w.runSandgate(t, []string{"--network", "full"}, probeArgv(cs)...)
	expectProbes(t, o, cs)
}

// TestRunAllowUnixSockets checks that --allow-unix-sockets lifts exactly the
// unix socket rule: the host's socket is reachable, the network still is not.
func TestRunAllowUnixSockets(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	cs := []chk{
		succeeds("unixsocket"),
		succeeds("unix", w.hostSock).with("HOST-UNIX"),
		fails("tcp", remoteV4+":80"),
	}
	o := w.runSandgate(t, []string{"--allow-unix-sockets", "--no-transparent"}, probeArgv(cs)...)
	expectProbes(t, o, cs)
}

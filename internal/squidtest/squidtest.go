// Package squidtest starts a real squid (Debian's package, installed by
// scripts/install-test-deps.sh) on loopback for tests of sandgate's upstream
// proxy support. It is imported by tests only.
package squidtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeAuth is squid's helper that accepts any Basic credentials.
const fakeAuth = "/usr/lib/squid/basic_fake_auth"

// Config says how the test's squid behaves.
type Config struct {
	// Wrap prefixes squid's command line, e.g. ip netns exec NS to run it
	// on a network namespace's loopback.
	Wrap []string
	// Hosts is squid's own hosts file: name → address. squid resolves
	// these names without DNS.
	Hosts map[string]string
	// Ports are the only ports squid lets CONNECT reach.
	Ports []uint16
	// Blocked names are refused by squid's own rules (403).
	Blocked []string
	// Auth makes squid require Basic proxy credentials (any pair).
	Auth bool
}

// Squid is a running squid.
type Squid struct {
	// Addr is its listener, 127.0.0.1:PORT on the loopback where it runs.
	Addr      string
	accessLog string
}

// Start runs squid -N with its own configuration in a directory of its
// own and waits until it accepts connections (read from its cache log, so
// this works in another network namespace too). squid is killed and its
// directory removed when the test ends. A missing squid fails the test.
func Start(t testing.TB, c Config) *Squid {
	t.Helper()
	bin, err := exec.LookPath("squid")
	if err != nil {
		t.Fatalf("squid is needed (scripts/install-test-deps.sh installs it): %v", err)
	}
	if c.Auth {
		if _, err := os.Stat(fakeAuth); err != nil {
			t.Fatalf("squid's %s is needed: %v", fakeAuth, err)
		}
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s, err := start(t, bin, c, pickPort(c.Wrap == nil))
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("starting squid: %v", lastErr)
	return nil
}

// pickPort returns a port that is free on this process's loopback when
// local, else (squid runs in another network namespace) a random one.
func pickPort(local bool) int {
	if local {
		if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
			defer ln.Close()
			return ln.Addr().(*net.TCPAddr).Port
		}
	}
	return 20000 + rand.IntN(40000)
}

// start tries one port.
func start(t testing.TB, bin string, c Config, port int) (*Squid, error) {
	// squid started as root drops to its own user, which writes its logs
	// and pid file here: a directory of its own, not under t.TempDir's
	// private parent.
	dir, err := os.MkdirTemp("", "sandgate-squid-")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, err
	}
	s := &Squid{Addr: "127.0.0.1:" + strconv.Itoa(port), accessLog: filepath.Join(dir, "access.log")}
	confPath := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hostsFile(c.Hosts)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(confPath, []byte(conf(c, s.Addr, dir)), 0o644); err != nil {
		return nil, err
	}
	argv := append(append([]string(nil), c.Wrap...), bin, "-N", "-f", confPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %v: %w", argv, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	cacheLog := filepath.Join(dir, "cache.log")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(cacheLog)
		if strings.Contains(string(b), "Accepting HTTP Socket connections at") {
			t.Cleanup(stop)
			return s, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("squid exited before listening on %s:\n%s", s.Addr, b)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("squid did not listen on %s in time:\n%s", s.Addr, b)
		}
	}
}

// hostsFile renders squid's hosts file.
func hostsFile(hosts map[string]string) string {
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", hosts[n], n)
	}
	return b.String()
}

// conf renders squid.conf.
func conf(c Config, addr, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "http_port %s\npid_filename %s\ncache_log %s\naccess_log %s\n",
		addr, filepath.Join(dir, "squid.pid"), filepath.Join(dir, "cache.log"), filepath.Join(dir, "access.log"))
	b.WriteString("cache deny all\ncache_mem 0 MB\npinger_enable off\nshutdown_lifetime 0 seconds\n")
	fmt.Fprintf(&b, "hosts_file %s\n", filepath.Join(dir, "hosts"))
	if c.Auth {
		fmt.Fprintf(&b, "auth_param basic program %s\nacl authed proxy_auth REQUIRED\n", fakeAuth)
	}
	b.WriteString("acl tport port")
	for _, p := range c.Ports {
		fmt.Fprintf(&b, " %d", p)
	}
	b.WriteString("\n")
	if len(c.Blocked) > 0 {
		b.WriteString("acl blocked dstdomain " + strings.Join(c.Blocked, " ") + "\nhttp_access deny blocked\n")
	}
	b.WriteString("http_access deny !tport\n")
	if c.Auth {
		b.WriteString("http_access deny !authed\n")
	}
	b.WriteString("http_access allow all\n")
	return b.String()
}

// Log is squid's access log so far.
func (s *Squid) Log() string {
	b, _ := os.ReadFile(s.accessLog)
	return string(b)
}

// WaitLog waits until squid's access log holds want (squid writes a
// tunnel's line when it ends) and returns the log; it fails the test after
// 5 s.
func (s *Squid) WaitLog(t testing.TB, want string) string {
	t.Helper()
	var log string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if log = s.Log(); strings.Contains(log, want) {
			return log
		}
	}
	t.Fatalf("squid's access log has no %q:\n%s", want, log)
	return ""
}

//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

func TestMain(m *testing.M) {
	MaybeInit()
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// mustHaveSandbox handles a Run error that says enforcement is unavailable:
// a skip for unprivileged developers, a failure as root or when
// SANDGATE_REQUIRE_PRIVILEGED is set (CI).
func mustHaveSandbox(t *testing.T, err error) {
	t.Helper()
	if err == nil || !errors.Is(err, ErrUnavailable) {
		return
	}
	if os.Geteuid() != 0 && os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") == "" {
		t.Skipf("sandbox unavailable on this machine: %v", err)
	}
	t.Fatalf("sandbox unavailable (this test must run here): %v", err)
}

type outcome struct {
	res            Result
	err            error
	stdout, stderr string
	notes          []string // sandgate's own messages (Spec.Notify)
}

// notes collects the messages a run gives Spec.Notify.
type notes struct {
	mu   sync.Mutex
	msgs []string
}

func (n *notes) add(msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, msg)
}

func (n *notes) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// sandboxRun runs spec with the test binary as init, stdin from /dev/null
// and captured output, under a timeout.
func sandboxRun(t *testing.T, spec Spec) outcome {
	t.Helper()
	if spec.Executable == "" {
		spec.Executable = testBinary()
	}
	if spec.Stdin == nil {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer devnull.Close()
		spec.Stdin = devnull
	}
	var stdout, stderr bytes.Buffer
	if spec.Stdout == nil {
		spec.Stdout = &stdout
	}
	if spec.Stderr == nil {
		spec.Stderr = &stderr
	}
	var ns notes
	if spec.Notify == nil {
		spec.Notify = ns.add
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, spec)
	mustHaveSandbox(t, err)
	return outcome{res, err, stdout.String(), stderr.String(), ns.all()}
}

// helperSpec is a Spec running the test binary's helper name with args.
// (GORACE: a race-enabled helper would otherwise linger 1s at exit.)
func helperSpec(name string, args ...string) Spec {
	return Spec{
		Args: append([]string{testBinary()}, args...),
		Env:  append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0"),
	}
}

// testBinary is the path of this test binary (the sandbox's init and the
// helpers' command).
func testBinary() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}

// background runs spec in a goroutine (stdin at EOF and output captured,
// unless spec says otherwise); the returned function waits for it.
func background(t *testing.T, spec Spec) (*syncBuffer, func() outcome) {
	out := &syncBuffer{}
	if spec.Stdout == nil {
		spec.Stdout = out
	}
	done := make(chan outcome, 1)
	go func() {
		var errBuf bytes.Buffer
		var ns notes
		if spec.Stderr == nil {
			spec.Stderr = &errBuf
		}
		if spec.Notify == nil {
			spec.Notify = ns.add
		}
		if spec.Stdin == nil {
			spec.Stdin = eofReader{}
		}
		if spec.Executable == "" {
			spec.Executable = testBinary()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err := Run(ctx, spec)
		done <- outcome{res: res, err: err, stderr: errBuf.String(), notes: ns.all()}
	}()
	return out, func() outcome {
		o := <-done
		o.stdout = out.String()
		return o
	}
}

// runNoCheck runs spec (the test binary as init, no stdin, output
// captured) for a test that expects Run to fail.
func runNoCheck(spec Spec) outcome {
	_, wait := background(nil, spec)
	return wait()
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls until the buffer holds sub.
func (s *syncBuffer) waitFor(t *testing.T, sub string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.String(), sub) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in %q", sub, s.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statusField returns the value of a /proc/PID/status field.
func statusField(t *testing.T, status, field string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(field) + `:\s*(.*)$`).FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("no %s in status:\n%s", field, status)
	}
	return strings.TrimSpace(m[1])
}

func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// regexpAll returns the first submatch of every match of re in s.
func regexpAll(re, s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// serveUntilEnd listens on network, addr until the test ends and hands
// every connection to serve (in a goroutine of its own), which closes it.
// It returns the listening address.
func serveUntilEnd(t *testing.T, network, addr string, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// unixListener listens on the unix socket addr ("@NAME": abstract) until
// the test ends, closing every connection it accepts.
func unixListener(t *testing.T, addr string) {
	t.Helper()
	serveUntilEnd(t, "unix", addr, func(c net.Conn) { c.Close() })
}

// hostListener accepts on 127.0.0.1 of the host's network namespace and
// greets every client with line.
func hostListener(t *testing.T, line string) string {
	t.Helper()
	return serveUntilEnd(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		fmt.Fprintln(c, line)
		c.Close()
	})
}

// denyAllGate is a gate whose policy allows nothing.
func denyAllGate() *egress.Gate {
	pol, err := policy.New(policy.Config{})
	if err != nil {
		panic(err)
	}
	return &egress.Gate{Policy: pol}
}

// allowGate is a gate whose policy allows exactly addrs.
func allowGate(t *testing.T, addrs ...string) *egress.Gate {
	t.Helper()
	pol, err := policy.New(policy.Config{Allow: addrs})
	if err != nil {
		t.Fatal(err)
	}
	return &egress.Gate{Policy: pol}
}

// findProcsWith returns the host pids whose command line contains token.
func findProcsWith(token string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), token) {
			pids = append(pids, pid)
		}
	}
	return pids
}

//go:build linux

package sandbox

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/sandbox/internal/initproto"
	"github.com/sandgate/sandgate/secrets"
)

// The sandbox init gets its configuration (the file system view, the
// unix sockets, the working directory, the transparent path's files) over
// the status socket, never in its argv, which every local user can read in
// /proc/PID/cmdline. These tests read the argv and the environment of a
// running init of each Linux backend and look for any of it.

func init() {
	// The "argv-" helpers; the sandbox init itself is left to MaybeInit.
	if len(os.Args) == 0 || initproto.IsInit(os.Args) {
		return
	}
	if os.Getenv(helperEnv) == "argv-hold" {
		os.Exit(argvHoldHelper())
	}
}

// argvHoldHelper prints its environment (one quoted entry a line), then
// "holding", and exits when its stdin ends.
func argvHoldHelper() int {
	w := bufio.NewWriter(os.Stdout)
	for _, e := range os.Environ() {
		fmt.Fprintf(w, "env %s\n", strconv.Quote(e))
	}
	fmt.Fprintln(w, "holding")
	w.Flush()
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// initArgvCase is one run whose init is inspected: its Spec (Args end in
// a marker argument that finds the init) and the configuration's own
// strings that must not be in the init's argv or environment.
type initArgvCase struct {
	spec    Spec
	secrets []string
}

// newInitArgvCase makes a run of the argv-hold helper (exe) in dir with a
// configuration full of recognisable strings: a --write root and a hidden
// path (the view), an allowed unix socket, an allow entry of the gate, a
// secret bound to it (CMD gets its placeholder, never its value).
func newInitArgvCase(t *testing.T, f *viewFixture, exe, dir string) initArgvCase {
	t.Helper()
	tag := randHex(6)
	value := "secretmarker" + randHex(16)
	hosts, err := secrets.ParseHosts([]string{"allowmarker-" + tag + ".test"})
	if err != nil {
		t.Fatal(err)
	}
	set, err := secrets.New(rand.Reader, secrets.Binding{Name: "SGTEST_TOKEN", Value: value, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	write := filepath.Join(f.base, "writemarker-"+tag)
	hidden := filepath.Join(f.base, "hidemarker-"+tag)
	sock := filepath.Join(f.base, "sockmarker-"+tag+".sock")
	for _, d := range []string{write, hidden} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	unixListener(t, sock)
	allow := "allowmarker-" + tag + ".test:443"
	view := f.profile(dir, exe)
	view.Write = append(view.Write, write)
	view.Hide = append(view.Hide, hidden)
	spec := Spec{
		Args: []string{exe, "holdmarker-" + tag},
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", helperEnv + "=argv-hold", "GORACE=atexit_sleep_ms=0",
			"SGTEST_PLAIN=plain-value", set.Env()[0]},
		Dir:         dir,
		Network:     NetworkProxy,
		Gate:        allowGate(t, allow),
		UnixSockets: []string{sock},
		View:        view,
		Secrets:     set,
	}
	return initArgvCase{spec: spec, secrets: []string{write, hidden, sock, "allowmarker-" + tag, dir, "secretmarker"}}
}

// checkInitArgv runs c, finds its init (a child of this process, argv[0]
// initproto.Arg0, with the marker argument) while CMD holds, and checks
// its argv and environment.
func checkInitArgv(t *testing.T, c initArgvCase) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c.spec.Stdin = r
	out, wait := background(t, c.spec)
	released := false
	release := func() {
		if !released {
			released = true
			w.Close()
		}
	}
	defer release()
	waitOut(t, out, "holding\n", wait, release)
	pid := findInit(t, c.spec.Args[len(c.spec.Args)-1])
	argv := readNulList(t, fmt.Sprintf("/proc/%d/cmdline", pid))
	env := readNulList(t, fmt.Sprintf("/proc/%d/environ", pid))
	release()
	o := wait()
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("run: %+v %v\n%s", o.res, o.err, o.stderr)
	}

	// argv is exactly the init's name, "@status" and the command.
	want := append([]string{initproto.Arg0, initproto.ConfigOnStatus}, c.spec.Args...)
	if !slices.Equal(argv, want) {
		t.Errorf("the init's argv is %q, want %q", argv, want)
	}
	// The environment is CMD's own (nothing added for the init).
	cmdEnv := map[string]bool{}
	for _, line := range strings.Split(o.stdout, "\n") {
		if q, ok := strings.CutPrefix(line, "env "); ok {
			if v, err := strconv.Unquote(q); err == nil {
				cmdEnv[v] = true
			}
		}
	}
	if !cmdEnv["SGTEST_PLAIN=plain-value"] {
		t.Fatalf("CMD's environment was not read from its output:\n%s", o.stdout)
	}
	for _, e := range env {
		if !cmdEnv[e] {
			t.Errorf("the init's environment has %q, which CMD's has not", e)
		}
	}
	for what, list := range map[string][]string{"argv": argv, "environment": env} {
		all := strings.Join(list, "\x00")
		for _, s := range append(c.secrets, `{"`, `"net"`, `"view"`, `"unixSockets"`) {
			if strings.Contains(all, s) {
				t.Errorf("the init's %s holds %q (configuration): %q", what, s, list)
			}
		}
	}
}

// waitOut waits for sub in out; when the run ends first it fails with the
// run's outcome.
func waitOut(t *testing.T, out *syncBuffer, sub string, wait func() outcome, release func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), sub) {
		if time.Now().After(deadline) {
			release()
			o := wait()
			t.Fatalf("CMD did not start holding: %+v %v\nstdout %s\nstderr %s", o.res, o.err, o.stdout, o.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// findInit returns the pid of this process's child that is a sandbox init
// whose argv has marker.
func findInit(t *testing.T, marker string) int {
	t.Helper()
	self := strconv.Itoa(os.Getpid())
	var found []int
	for _, pid := range findProcsWith(marker) {
		argv, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.HasPrefix(string(argv), initproto.Arg0+"\x00") {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err == nil && statusLine(string(status), "PPid") == self {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("children of this process that are the init with %q: %v, want one", marker, found)
	}
	return found[0]
}

// readNulList reads a NUL-separated /proc file (cmdline, environ).
func readNulList(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// TestInitArgvNetns: the netns backend's init, with a view, an allowed
// unix socket, the proxy and the transparent path, has none of its
// configuration in argv or environment.
func TestInitArgvNetns(t *testing.T) {
	f := newViewFixture(t)
	c := newInitArgvCase(t, f, testBinary(), f.ws)
	c.spec.Backend, c.spec.Transparent = BackendNetns, true
	checkInitArgv(t, c)
}

// testInitArgv is TestInitArgvNetns for the identity backend.
func (w *idWorld) testInitArgv(t *testing.T) {
	f := newViewFixture(t)
	c := newInitArgvCase(t, f, w.bin, w.work)
	c.spec.Backend, c.spec.leaser = BackendIdentity, &w.leaser
	checkInitArgv(t, c)
}

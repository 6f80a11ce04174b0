//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/firewall"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox/internal/initproc"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
	"github.com/sandgate/sandgate/setup"
)

// The identity backend's privileged tests run in a child process of the
// test born in a network namespace of its own: the nftables rules, the
// loopback and the abstract unix sockets are private to it. The setup is
// made by package setup, with test-unique names, in a state directory of
// the test and in copies of the account files (setup.Options.EtcDir):
// nothing of the machine changes, and everything goes with the test.

// idNetnsEnv marks the child that runs TestIdentityInNetns.
const idNetnsEnv = "SANDGATE_IDENTITY_TEST_NETNS"

// idConfigEnv carries an idHelperConfig to helpers that call Run.
const idConfigEnv = "SANDGATE_IDENTITY_TEST_CONFIG"

// idHelperConfig points a helper process at the test's setup.
type idHelperConfig struct {
	StateDir string `json:"state_dir"`
	EtcDir   string `json:"etc_dir"`
	LockDir  string `json:"lock_dir"`
	GrantDir string `json:"grant_dir"`
	Dir      string `json:"dir"`
	Bin      string `json:"bin"`
	Count    string `json:"count"`
}

func (c idHelperConfig) apply() {
	setupOptions = setup.Options{StateDir: c.StateDir, EtcDir: c.EtcDir}
	identityLockDir, grantStateDir = c.LockDir, c.GrantDir
}

func init() {
	// Helpers of the identity tests ("id-" names); the sandbox init (argv[0]
	// initproto.Arg0) has the same environment as the command, so it is
	// left to MaybeInit.
	if len(os.Args) == 0 || initproto.IsInit(os.Args) {
		return
	}
	if name := os.Getenv(helperEnv); strings.HasPrefix(name, "id-") {
		os.Exit(runIDHelper(name, os.Args[1:]))
	}
}

func runIDHelper(name string, args []string) int {
	switch name {
	case "id-status":
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		os.Stdout.Write(b)
		groups, err := unix.Getgroups()
		fmt.Printf("getgroups %v %v\n", groups, err)
		fmt.Printf("pid %d ppid %d\n", os.Getpid(), os.Getppid())
		for _, k := range args {
			v, ok := os.LookupEnv(k)
			fmt.Printf("env %s=%q %v\n", k, v, ok)
		}
		return 0
	case "id-net":
		return idNetHelper(args)
	case "id-wait":
		// Print the proxy ports, wait for args[0] to exist, then create
		// the files args[1:] in the working directory.
		fmt.Printf("ports %s %s\n", os.Getenv("HTTP_PROXY"), os.Getenv("ALL_PROXY"))
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(args[0]); err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Println("timeout")
				return 1
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, f := range args[1:] {
			fmt.Printf("touch %s %s\n", f, errName(os.WriteFile(f, []byte("x"), 0o644)))
		}
		return 0
	case "id-grant":
		buf := make([]byte, 4096)
		n, err := unix.Getxattr(".", aclXattr, buf)
		if err != nil {
			fmt.Printf("acl %s\n", errName(err))
		} else {
			fmt.Printf("acl %s\n", hex.EncodeToString(buf[:n]))
		}
		fmt.Printf("touch %s\n", errName(os.WriteFile("made-by-the-sandbox", []byte("x"), 0o644)))
		return 0
	case "id-count":
		f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Println("count", err)
			return 1
		}
		fmt.Fprintf(f, "ran as %d\n", os.Getuid())
		f.Close()
		return 0
	case "id-nonroot":
		// Not root: what does the identity backend say?
		var c idHelperConfig
		if err := json.Unmarshal([]byte(os.Getenv(idConfigEnv)), &c); err != nil {
			fmt.Println("config:", err)
			return 3
		}
		c.apply()
		_, err := Run(context.Background(), Spec{Args: []string{"true"}, Network: NetworkProxy, Backend: BackendIdentity,
			AllowLocalBinding: true, Gate: denyAllGate(), Stdin: eofReader{}})
		fmt.Printf("unavailable %v\nerror %v\n", errors.Is(err, ErrUnavailable), err)
		return 0
	case "id-auto":
		// Root, but where a seccomp policy refuses user namespaces (as
		// some container runtimes do): auto must fall back to identity,
		// and CMD must run once.
		var c idHelperConfig
		if err := json.Unmarshal([]byte(os.Getenv(idConfigEnv)), &c); err != nil {
			fmt.Println("config:", err)
			return 3
		}
		c.apply()
		if err := refuseUserNamespaces(); err != nil {
			fmt.Println("seccomp:", err)
			return 3
		}
		env := append(os.Environ(), helperEnv+"=id-count")
		res, err := Run(context.Background(), Spec{Args: []string{c.Bin, c.Count}, Env: env, Network: NetworkNone,
			Backend: BackendAuto, Dir: c.Dir, Executable: c.Bin, Stdin: eofReader{}})
		fmt.Printf("exit %d\nunavailable %v\nerror %v\n", res.ExitCode, errors.Is(err, ErrUnavailable), err)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
	return 99
}

// refuseUserNamespaces installs, on every thread, a seccomp filter that
// refuses clone and unshare with CLONE_NEWUSER (EPERM) and clone3 (ENOSYS,
// so that callers fall back to clone).
func refuseUserNamespaces() error {
	// seccomp_data offsets and return values (include/uapi/linux/seccomp.h).
	const (
		offNr, offArch, offArg0Low = 0, 4, 16
		retAllow                   = unix.SECCOMP_RET_ALLOW
		retEPERM                   = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		retENOSYS                  = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	var audit, cloneNr, unshareNr, clone3Nr uint32
	switch runtime.GOARCH {
	case "amd64":
		audit, cloneNr, unshareNr, clone3Nr = unix.AUDIT_ARCH_X86_64, 56, 272, 435
	case "arm64":
		audit, cloneNr, unshareNr, clone3Nr = unix.AUDIT_ARCH_AARCH64, 220, 97, 435
	default:
		return fmt.Errorf("no system call numbers for %s", runtime.GOARCH)
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: audit, SkipFalse: 6},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: clone3Nr, SkipTrue: 6},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: cloneNr, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unshareNr, SkipFalse: 2},
		bpf.LoadAbsolute{Off: offArg0Low, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.CLONE_NEWUSER, SkipTrue: 1},
		bpf.RetConstant{Val: retAllow},
		bpf.RetConstant{Val: retEPERM},
		bpf.RetConstant{Val: retENOSYS},
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return e
	}
	return nil
}

// idNetHelper tries the network the way a client in the sandbox would.
// Each argument is a check: "http-auth=ADDR", "http-noauth=ADDR",
// "socks-auth=ADDR", "socks-noauth=ADDR", "direct=ADDR", "udp=ADDR",
// "abstract=NAME", "own-abstract", "unix-socket".
func idNetHelper(args []string) int {
	for _, a := range args {
		kind, addr, _ := strings.Cut(a, "=")
		switch kind {
		case "http-auth", "http-noauth":
			fmt.Printf("%s %s %s\n", kind, addr, proxyGet(addr, kind == "http-auth"))
		case "socks-auth", "socks-noauth":
			fmt.Printf("%s %s %s\n", kind, addr, socksAuthGet(addr, kind == "socks-auth"))
		case "direct":
			c, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err == nil {
				c.Close()
			}
			fmt.Printf("direct %s %s\n", addr, errName(err))
		case "udp":
			fmt.Printf("udp %s %s\n", addr, udpEcho(addr))
		case "abstract":
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err == nil {
				err = unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + addr})
				unix.Close(fd)
			}
			fmt.Printf("abstract %s %s\n", addr, errName(err))
		case "own-abstract":
			// An abstract socket made inside the sandbox stays reachable
			// from inside: the scope shuts only the outside.
			name := fmt.Sprintf("@sgtest-own-%d", os.Getpid())
			ln, err := net.Listen("unix", name)
			if err == nil {
				go func() {
					if c, err := ln.Accept(); err == nil {
						c.Close()
					}
				}()
				var c net.Conn
				c, err = net.Dial("unix", name)
				if err == nil {
					c.Close()
				}
				ln.Close()
			}
			fmt.Printf("own-abstract %s\n", errName(err))
		case "unix-socket":
			err := closeFD(unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0))
			fmt.Printf("unix-socket %s\n", errName(err))
		}
	}
	return 0
}

// proxyGet sends GET http://target/ through HTTP_PROXY, with or without its
// credentials, and returns the status code and body.
func proxyGet(target string, auth bool) string {
	u, err := url.Parse(os.Getenv("HTTP_PROXY"))
	if err != nil || u.Host == "" {
		return "bad HTTP_PROXY " + os.Getenv("HTTP_PROXY")
	}
	c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		return "dial-proxy " + errName(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, target)
	if auth {
		pass, _ := u.User.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)) + "\r\n"
	}
	fmt.Fprint(c, req+"\r\n")
	b, _ := io.ReadAll(c)
	status, _, _ := strings.Cut(string(b), "\r\n")
	fields := strings.Fields(status)
	code := "none"
	if len(fields) > 1 {
		code = fields[1]
	}
	body := ""
	if _, after, ok := strings.Cut(string(b), "\r\n\r\n"); ok {
		body = strings.TrimSpace(after)
	}
	if code != "200" {
		body = ""
	}
	return strings.TrimSpace(code + " " + body)
}

// socksAuthGet connects to target through ALL_PROXY (offering only
// username/password with its credentials, or only "no authentication") and
// reads a line.
func socksAuthGet(target string, auth bool) string {
	u, err := url.Parse(os.Getenv("ALL_PROXY"))
	if err != nil || u.Host == "" {
		return "bad ALL_PROXY " + os.Getenv("ALL_PROXY")
	}
	c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		return "dial-proxy " + errName(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	method := byte(0)
	if auth {
		method = 2
	}
	c.Write([]byte{5, 1, method})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return "hello " + err.Error()
	}
	if sel[1] != method {
		return fmt.Sprintf("method %02x", sel[1])
	}
	if auth {
		pass, _ := u.User.Password()
		user := u.User.Username()
		msg := append([]byte{1, byte(len(user))}, user...)
		msg = append(append(msg, byte(len(pass))), pass...)
		c.Write(msg)
		var st [2]byte
		if _, err := io.ReadFull(c, st[:]); err != nil || st[1] != 0 {
			return fmt.Sprintf("auth %v %v", st, err)
		}
	}
	host, port, _ := net.SplitHostPort(target)
	p, _ := strconv.Atoi(port)
	req := append([]byte{5, 1, 0, 1}, net.ParseIP(host).To4()...)
	c.Write(append(req, byte(p>>8), byte(p)))
	var rep [10]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return "reply " + err.Error()
	}
	if rep[1] != 0 {
		return fmt.Sprintf("refused %d", rep[1])
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return "ok " + strings.TrimSpace(line)
}

// udpEcho sends a datagram to addr and waits a little for the echo.
func udpEcho(addr string) string {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return errName(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return errName(err)
	}
	buf := make([]byte, 16)
	if _, err := c.Read(buf); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "noreply"
		}
		return errName(err)
	}
	return "reply"
}

// ---- The test-owned namespaces ----

// TestIdentityBackend runs TestIdentityInNetns in a child process in a new
// network namespace.
func TestIdentityBackend(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("SANDGATE_REQUIRE_PRIVILEGED") != "" {
			t.Fatal("this test needs root (SANDGATE_REQUIRE_PRIVILEGED is set, so it may not skip)")
		}
		t.Skip("needs root: the identity backend runs commands as other users")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := []string{"-test.run=^TestIdentityInNetns$", "-test.v", "-test.count=1"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := execCommandContext(ctx, testBinary(), args...)
	cmd.Env = append(os.Environ(), idNetnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestIdentityInNetns")) {
		t.Fatalf("identity tests in a test-owned network namespace: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}

// idWorld is the identity setup of TestIdentityInNetns.
type idWorld struct {
	offUID, onUID, gid int
	names              [3]string // offline user, online user, group
	opts               setup.Options
	bin                string // a copy of the test binary the sandbox users can run
	base               string // a directory everyone can search
	work               string // CMD's working directory: root's, mode 0700
	gates              string // where the test drops files CMD waits for
	reconciles         int
}

// helperConfig is the configuration of helper processes that call Run.
func (w *idWorld) helperConfig() idHelperConfig {
	return idHelperConfig{StateDir: w.opts.StateDir, EtcDir: w.opts.EtcDir, LockDir: identityLockDir, GrantDir: grantStateDir}
}

// TestIdentityInNetns is the body of TestIdentityBackend: it runs only in
// the child in the test's own namespaces.
func TestIdentityInNetns(t *testing.T) {
	if os.Getenv(idNetnsEnv) == "" {
		// Not a skip: TestIdentityBackend runs this body in its child,
		// inside the namespaces it made, and fails when the body fails.
		return
	}
	w := newIDWorld(t)
	t.Run("LockedDown", w.testLockedDown)
	t.Run("Proxy", w.testProxy)
	t.Run("UnixSockets", w.testUnixSockets)
	t.Run("NetworkNone", w.testNetworkNone)
	t.Run("NetworkFull", w.testNetworkFull)
	t.Run("Ports", w.testPorts)
	t.Run("DirGrant", w.testDirGrant)
	t.Run("Drift", w.testDrift)
	t.Run("NonRoot", w.testNonRoot)
	t.Run("Auto", w.testAuto)
	t.Run("ExitCodesSignalsTerminal", w.testProcess)
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func newIDWorld(t *testing.T) *idWorld {
	if err := landlockScopingAvailable(); err != nil {
		t.Fatalf("the identity backend cannot run on this kernel: %v", err)
	}
	if err := initproc.LoopbackUp(); err != nil {
		t.Fatal(err)
	}
	base, err := filepath.EvalSymlinks(t.TempDir()) // the paths runs report have none
	if err != nil {
		t.Fatal(err)
	}
	w := &idWorld{base: base}
	for _, d := range []string{filepath.Dir(w.base), w.base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Copies of the account files for setup to add the test users to.
	etc := filepath.Join(w.base, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "shadow", "group", "gshadow", "login.defs"} {
		src := filepath.Join("/etc", f)
		fi, err := os.Stat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, f), data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	tag := "sgtest-" + randHex(3)
	w.names = [3]string{tag + "-off", tag + "-on", tag}
	w.opts = setup.Options{OfflineUser: w.names[0], OnlineUser: w.names[1], Group: w.names[2],
		StateDir: filepath.Join(w.base, "state"), EtcDir: etc}

	// The test binary where the sandbox users can execute it.
	data, err := os.ReadFile(testBinary())
	if err != nil {
		t.Fatal(err)
	}
	w.bin = filepath.Join(w.base, "sandbox.test")
	if err := os.WriteFile(w.bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	w.work = filepath.Join(w.base, "work")
	w.gates = filepath.Join(w.base, "gates")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{w.work, 0o700}, {w.gates, 0o755}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(swapVar(&setupOptions, setup.Options{StateDir: w.opts.StateDir, EtcDir: etc}))
	t.Cleanup(swapVar(&identityLockDir, filepath.Join(w.base, "run")))
	t.Cleanup(swapVar(&grantStateDir, filepath.Join(w.base, "grants")))
	t.Cleanup(swapVar(&reconcileSetup, func(o setup.Options) (setup.Marker, []string, error) {
		w.reconciles++
		return setup.Reconcile(o)
	}))

	m, _, err := setup.Install(w.opts)
	if err != nil {
		t.Fatalf("setup.Install: %v", err)
	}
	t.Cleanup(func() {
		if _, err := setup.Uninstall(w.opts); err != nil {
			t.Errorf("setup.Uninstall: %v", err)
		}
	})
	for _, p := range []struct {
		dst *int
		id  string
	}{{&w.offUID, m.OfflineID}, {&w.onUID, m.OnlineID}, {&w.gid, m.GroupID}} {
		if *p.dst, err = strconv.Atoi(p.id); err != nil || *p.dst <= 0 {
			t.Fatalf("marker ids: %+v", m)
		}
	}
	return w
}

// spec returns a Spec running the helper name (as a sandbox user) in the
// working directory.
func (w *idWorld) spec(name string, args ...string) Spec {
	return Spec{
		Args:    append([]string{w.bin}, args...),
		Env:     append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0"),
		Dir:     w.work,
		Backend: BackendIdentity,
		Network: NetworkNone,
	}
}

// gate returns a fresh path for CMD to wait on, and a function creating it.
func (w *idWorld) gate() (string, func()) {
	p := filepath.Join(w.gates, randHex(6))
	return p, func() { os.WriteFile(p, nil, 0o644) }
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

// statusLine returns the value of a /proc/PID/status field.
func statusLine(status, field string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "<missing>"
}

func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func (w *idWorld) testLockedDown(t *testing.T) {
	for _, network := range []Network{NetworkProxy, NetworkNone} {
		spec := w.spec("id-status")
		spec.Network, spec.Gate = network, denyAllGate()
		o := sandboxRun(t, spec)
		if o.err != nil || o.res.ExitCode != 0 {
			t.Fatalf("%v: %+v %v %s", network, o.res, o.err, o.stderr)
		}
		id := func(n int) string { return fmt.Sprintf("%d\t%d\t%d\t%d", n, n, n, n) }
		for field, want := range map[string]string{
			"Uid": id(w.offUID), "Gid": id(w.gid), "Groups": "",
			"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
			"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
			"NoNewPrivs": "1", "Seccomp": "2",
		} {
			if got := statusLine(o.stdout, field); got != want {
				t.Errorf("%v: %s = %q, want %q", network, field, got, want)
			}
		}
		mustContain(t, o.stdout, "getgroups [] <nil>", " ppid 1\n")
	}
}

// servers starts, in the test's namespace, an HTTP server and a line
// server on loopback and a UDP echo server; it returns their addresses.
func servers(t *testing.T) (httpAddr, lineAddr, udpAddr string) {
	t.Helper()
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hln.Close() })
	go func() {
		for {
			c, err := hln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil || strings.TrimSpace(l) == "" {
						break
					}
				}
				fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: close\r\n\r\nhello from host\n")
			}()
		}
	}()
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			uc.WriteTo(buf[:n], from)
		}
	}()
	return hln.Addr().String(), hostListener(t, "line-greeting"), uc.LocalAddr().String()
}

func (w *idWorld) testProxy(t *testing.T) {
	httpAddr, lineAddr, udpAddr := servers(t)
	spec := w.spec("id-net", "http-auth="+httpAddr, "http-noauth="+httpAddr, "http-auth="+lineAddr,
		"socks-auth="+lineAddr, "socks-noauth="+lineAddr, "direct="+httpAddr, "direct="+lineAddr, "udp="+udpAddr)
	spec.Network, spec.Gate = NetworkProxy, allowGate(t, httpAddr, lineAddr)
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 || o.res.ProxyErr != nil {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout,
		"http-auth "+httpAddr+" 200 hello from host\n", // through the proxy, allowed
		"http-noauth "+httpAddr+" 407\n",               // the proxy wants the run's credentials
		"socks-auth "+lineAddr+" ok line-greeting\n",
		"socks-noauth "+lineAddr+" method ff\n", // no acceptable method without credentials
		"direct "+httpAddr+" ECONNREFUSED\n",    // loopback TCP besides the proxy ports: rejected
		"direct "+lineAddr+" ECONNREFUSED\n")
	if strings.Contains(o.stdout, "udp "+udpAddr+" reply") || !strings.Contains(o.stdout, "udp "+udpAddr+" ") {
		t.Errorf("loopback UDP got through:\n%s", o.stdout)
	}

	// Another program listening on reserved ports (an unmarked socket, as
	// another local user or a --network full run would have) cannot serve
	// the offline user: neither on a port no run holds nor on ::1 at a port
	// a run may hold on 127.0.0.1. Without the input rule both would answer.
	last := int(setup.DefaultPorts()[setup.DefaultPortCount-1])
	relays := []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(last)), net.JoinHostPort("::1", strconv.Itoa(setup.DefaultPortBase))}
	for _, addr := range relays {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	relay := w.spec("id-net", "direct="+relays[0], "direct="+relays[1], "http-auth="+httpAddr)
	relay.Network, relay.Gate = NetworkProxy, spec.Gate
	o = sandboxRun(t, relay)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("%+v %v %s", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout, "direct "+relays[0]+" ECONNREFUSED\n", "direct "+relays[1]+" ECONNREFUSED\n",
		"http-auth "+httpAddr+" 200 hello from host\n")

	// The proxy's listeners carry the mark the input rule asks for.
	lns, err := reserveProxyPorts(setup.DefaultPorts(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeListeners(lns)
	for _, ln := range lns {
		rc, err := ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var mark int
		var merr error
		rc.Control(func(fd uintptr) { mark, merr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
		if merr != nil || mark != firewall.ProxySocketMark {
			t.Errorf("proxy listener %s has SO_MARK %#x (%v), want %#x", ln.Addr(), mark, merr, firewall.ProxySocketMark)
		}
	}

	// The environment: credentials in the URLs, NO_PROXY empty, the
	// sandbox user's home.
	env := w.spec("id-status", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "no_proxy", "SANDGATE_SOCKS_USER", "HOME", "USER")
	env.Network, env.Gate = NetworkProxy, spec.Gate
	env.Env = append(env.Env, "HTTP_PROXY=http://corp.example:3128", "NO_PROXY=corp.example")
	o = sandboxRun(t, env)
	if o.err != nil {
		t.Fatal(o.err)
	}
	mustContain(t, o.stdout, `env NO_PROXY="" true`, `env no_proxy="" true`, `env SANDGATE_SOCKS_USER="sandgate" true`,
		fmt.Sprintf(`env HOME=%q true`, filepath.Join(w.opts.StateDir, "home", w.names[0])), fmt.Sprintf(`env USER=%q true`, w.names[0]))
	re := `env HTTP_PROXY="http://sandgate:[0-9a-f]{32}@127\.0\.0\.1:471(0\d|1[0-5])" true`
	if !regexpMatch(re, o.stdout) || !regexpMatch(`env ALL_PROXY="socks5h://sandgate:[0-9a-f]{32}@127\.0\.0\.1:471\d\d" true`, o.stdout) {
		t.Errorf("proxy URLs:\n%s", o.stdout)
	}
}

func (w *idWorld) testUnixSockets(t *testing.T) {
	name := "sgtest-host-" + randHex(4)
	ln, err := net.Listen("unix", "@"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// The seccomp rule: no unix sockets at all.
	o := sandboxRun(t, w.spec("id-net", "unix-socket", "abstract="+name))
	mustContain(t, o.stdout, "unix-socket EPERM\n", "abstract "+name+" EPERM\n")
	// Without it, Landlock still shuts the host's abstract sockets, and
	// only them.
	spec := w.spec("id-net", "unix-socket", "abstract="+name, "own-abstract")
	spec.AllowUnixSockets = true
	o = sandboxRun(t, spec)
	mustContain(t, o.stdout, "unix-socket ok\n", "abstract "+name+" EPERM\n", "own-abstract ok\n")
	// The same connection from outside the sandbox works.
	if c, err := net.Dial("unix", "@"+name); err != nil {
		t.Errorf("the host's abstract socket is not reachable from the host: %v", err)
	} else {
		c.Close()
	}
}

func (w *idWorld) testNetworkNone(t *testing.T) {
	_, lineAddr, _ := servers(t)
	spec := w.spec("id-net", "direct="+lineAddr)
	o := sandboxRun(t, spec)
	mustContain(t, o.stdout, "direct "+lineAddr+" ECONNREFUSED\n")
	env := w.spec("id-status", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
	env.Env = append(env.Env, "HTTP_PROXY=http://corp.example:3128")
	o = sandboxRun(t, env)
	mustContain(t, o.stdout, `env HTTP_PROXY="" false`, `env ALL_PROXY="" false`, `env NO_PROXY="" false`,
		"Uid:\t"+strconv.Itoa(w.offUID)+"\t")
}

func (w *idWorld) testNetworkFull(t *testing.T) {
	_, lineAddr, _ := servers(t)
	spec := w.spec("id-net", "direct="+lineAddr)
	spec.Network = NetworkFull
	o := sandboxRun(t, spec)
	mustContain(t, o.stdout, "direct "+lineAddr+" ok\n")
	env := w.spec("id-status", "HTTP_PROXY")
	env.Network = NetworkFull
	env.Env = append(env.Env, "HTTP_PROXY=http://corp.example:3128")
	o = sandboxRun(t, env)
	mustContain(t, o.stdout, `env HTTP_PROXY="http://corp.example:3128" true`)
	id := func(n int) string { return fmt.Sprintf("%d\t%d\t%d\t%d", n, n, n, n) }
	if statusLine(o.stdout, "Uid") != id(w.onUID) || statusLine(o.stdout, "Gid") != id(w.gid) || statusLine(o.stdout, "Groups") != "" {
		t.Errorf("not the online user with the sandbox group only:\n%s", o.stdout)
	}
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

func (w *idWorld) testPorts(t *testing.T) {
	// Two runs at once take different ports of the reserved set.
	gatePath, open := w.gate()
	var outs []*syncBuffer
	var waits []func() outcome
	for i := 0; i < 2; i++ {
		spec := w.spec("id-wait", gatePath)
		spec.Network, spec.Gate = NetworkProxy, denyAllGate()
		out, wait := background(t, spec)
		outs, waits = append(outs, out), append(waits, wait)
	}
	ports := map[string]bool{}
	for _, out := range outs {
		out.waitFor(t, "\n")
		for _, m := range regexpAll(`127\.0\.0\.1:(\d+)`, out.String()) {
			ports[m] = true
		}
	}
	open()
	for _, wait := range waits {
		if o := wait(); o.err != nil || o.res.ExitCode != 0 {
			t.Errorf("concurrent run: %+v %v %s %s", o.res, o.err, o.stdout, o.stderr)
		}
	}
	if len(ports) != 4 {
		t.Errorf("two concurrent runs used ports %v, want four different ones", ports)
	}
	for p := range ports {
		if n, _ := strconv.Atoi(p); n < setup.DefaultPortBase || n >= setup.DefaultPortBase+setup.DefaultPortCount {
			t.Errorf("port %s is not one of the reserved ports", p)
		}
	}

	// All but one reserved port taken: the run does not start.
	var held []net.Listener
	for _, p := range setup.DefaultPorts()[1:] {
		ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(int(p)))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
	}
	defer closeListeners(held)
	count := filepath.Join(w.gates, "count-"+randHex(4))
	spec := w.spec("id-count", count)
	spec.Network, spec.Gate = NetworkProxy, denyAllGate()
	o := runNoCheck(spec)
	if !errors.Is(o.err, ErrUnavailable) {
		t.Fatalf("ports exhausted: %+v %v", o.res, o.err)
	}
	mustContain(t, o.err.Error(), "all 16 reserved proxy ports (47100-47115) are in use", "`sandgate setup --ports 47100-47131`")
	if _, err := os.Stat(count); err == nil {
		t.Error("CMD ran although no ports were free")
	}
}

func (w *idWorld) testDirGrant(t *testing.T) {
	checkGranted := func(out string) {
		t.Helper()
		m := regexpAll(`acl ([0-9a-f]+)\n`, out)
		if len(m) != 1 {
			t.Fatalf("no ACL seen by CMD:\n%s", out)
		}
		raw, _ := hex.DecodeString(m[0])
		a, err := parseACL(raw)
		if err != nil || !a.allows(0, 0, uint32(w.offUID), uint32(w.gid), aclRWX) {
			t.Errorf("CMD's directory ACL %v (%v) does not grant the sandbox group rwx", a, err)
		}
		mustContain(t, out, "touch ok\n")
	}
	assertRevoked := func() {
		t.Helper()
		if x := getXattr(t, w.work); x != nil {
			t.Errorf("grant still on %s after the run: %x", w.work, x)
		}
		if m := modeOfDir(t, w.work); m != 0o700 {
			t.Errorf("mode of %s after the run: %o, want 700", w.work, m)
		}
	}
	o := sandboxRun(t, w.spec("id-grant"))
	checkGranted(o.stdout)
	assertRevoked()

	// Two runs in one directory: the first to end leaves the grant to the
	// other.
	gatePath, open := w.gate()
	out, wait := background(t, w.spec("id-wait", gatePath, "after-the-other-run"))
	out.waitFor(t, "ports")
	o = sandboxRun(t, w.spec("id-grant"))
	checkGranted(o.stdout)
	if getXattr(t, w.work) == nil {
		t.Error("the grant went while another run still used the directory")
	}
	open()
	if o := wait(); !strings.Contains(o.stdout, "touch after-the-other-run ok\n") {
		t.Errorf("the longer run lost access: %+v %v %s", o.res, o.err, o.stdout)
	}
	assertRevoked()

	// --keep-dir-grant.
	spec := w.spec("id-grant")
	spec.KeepDirGrant = true
	o = sandboxRun(t, spec)
	checkGranted(o.stdout)
	if getXattr(t, w.work) == nil {
		t.Error("the kept grant is gone")
	}
	if err := unix.Removexattr(w.work, aclXattr); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(w.work, 0o700); err != nil {
		t.Fatal(err)
	}

	// A parent the sandbox user cannot search: refused, naming it; the
	// grant on the directory itself is taken back.
	shut := filepath.Join(w.base, "shut")
	inner := filepath.Join(shut, "inner")
	if err := os.MkdirAll(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shut, 0o700); err != nil {
		t.Fatal(err)
	}
	spec = w.spec("id-grant")
	spec.Dir = inner
	o = runNoCheck(spec)
	if o.err == nil || !strings.Contains(o.err.Error(), shut+" is not searchable by it") ||
		!strings.Contains(o.err.Error(), "setfacl -m g:"+w.names[2]+":x "+shut) {
		t.Errorf("unreachable working directory: %+v %v %s", o.res, o.err, o.stdout)
	}
	if x := getXattr(t, inner); x != nil {
		t.Errorf("grant left on %s after a refused run: %x", inner, x)
	}
}

func (w *idWorld) testDrift(t *testing.T) {
	_, lineAddr, _ := servers(t)
	run := func(alb bool) outcome {
		t.Helper()
		spec := w.spec("id-net", "direct="+lineAddr)
		spec.AllowLocalBinding = alb
		return sandboxRun(t, spec)
	}
	oneLine := func(o outcome, want string) {
		t.Helper()
		t.Logf("messages: %q", o.notes)
		if o.err != nil || len(o.notes) != 1 || !strings.HasPrefix(o.notes[0], "reconciled the identity setup: ") ||
			strings.Contains(o.notes[0], "\n") || !strings.Contains(o.notes[0], want) || o.stderr != "" {
			t.Errorf("reconcile: err %v, messages %q, stderr %q (want one message with %q, nothing on CMD's stderr)", o.err, o.notes, o.stderr, want)
		}
	}
	before := w.reconciles
	o := run(true)
	oneLine(o, "allow_local_binding changed from false to true")
	mustContain(t, o.stdout, "direct "+lineAddr+" ok\n") // the rules now open loopback
	o = run(true)
	if o.stderr != "" || len(o.notes) != 0 || w.reconciles != before+1 {
		t.Errorf("a current setup was reconciled again: %q %q", o.stderr, o.notes)
	}
	o = run(false)
	oneLine(o, "allow_local_binding changed from true to false")
	mustContain(t, o.stdout, "direct "+lineAddr+" ECONNREFUSED\n")

	// The rules are gone (as after a reboot) but the marker says installed.
	if err := firewall.Remove(""); err != nil {
		t.Fatal(err)
	}
	o = run(false)
	oneLine(o, "the firewall rules were missing, as after a reboot")
	mustContain(t, o.stdout, "direct "+lineAddr+" ECONNREFUSED\n")

	// A run that needs the other mode while runs rely on this one: refused.
	gatePath, open := w.gate()
	_, wait := background(t, w.spec("id-wait", gatePath))
	time.Sleep(200 * time.Millisecond) // let it take its share of the rules
	count := filepath.Join(w.gates, "count-"+randHex(4))
	spec := w.spec("id-count", count)
	spec.AllowLocalBinding = true
	o = runNoCheck(spec)
	open()
	wait()
	if !errors.Is(o.err, ErrUnavailable) || !strings.Contains(o.err.Error(), "other identity runs are using the installed rules") {
		t.Errorf("switching the rules under a running sandbox: %v", o.err)
	}
	if _, err := os.Stat(count); err == nil {
		t.Error("CMD ran")
	}

	// A reconcile that fails: exit 125 with the command.
	defer swapVar(&reconcileSetup, func(setup.Options) (setup.Marker, []string, error) {
		return setup.Marker{}, nil, errors.New("test failure")
	})()
	spec = w.spec("id-count", count)
	spec.AllowLocalBinding = true
	o = runNoCheck(spec)
	if !errors.Is(o.err, ErrUnavailable) || !strings.Contains(o.err.Error(), "run `sandgate setup --allow-local-binding`") {
		t.Errorf("failed reconcile: %v", o.err)
	}
}

func (w *idWorld) testNonRoot(t *testing.T) {
	cfg, _ := json.Marshal(w.helperConfig())
	cmd := execCommand(w.bin)
	cmd.Dir = w.base
	cmd.Env = append(os.Environ(), helperEnv+"=id-nonroot", idConfigEnv+"="+string(cfg), "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mustContain(t, string(out), "unavailable true\n", "allow_local_binding changed from false to true",
		"run `sudo sandgate setup --allow-local-binding` to reconcile it", "identity runs need root")
}

func (w *idWorld) testAuto(t *testing.T) {
	count := filepath.Join(w.work, "count")
	cfg := w.helperConfig()
	cfg.Dir, cfg.Bin, cfg.Count = w.work, w.bin, count
	auto := func(cfg idHelperConfig) string {
		raw, _ := json.Marshal(cfg)
		cmd := execCommand(w.bin)
		cmd.Env = append(os.Environ(), helperEnv+"=id-auto", idConfigEnv+"="+string(raw), "GORACE=atexit_sleep_ms=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out)
	}
	out := auto(cfg)
	mustContain(t, out, "exit 0\n", "error <nil>\n")
	b, err := os.ReadFile(count)
	if err != nil || string(b) != fmt.Sprintf("ran as %d\n", w.offUID) {
		t.Errorf("CMD under auto with user namespaces refused: %q %v (want one run as the offline user)\n%s", b, err, out)
	}
	os.Remove(count)

	// Not set up either: 125, explaining both.
	cfg.StateDir = filepath.Join(w.base, "no-such-setup")
	out = auto(cfg)
	mustContain(t, out, "unavailable true\n", "no backend can run here: the netns backend: cannot create the sandbox's namespaces",
		"the identity backend: the identity backend is not set up")
	if _, err := os.Stat(count); err == nil {
		t.Error("CMD ran")
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

func execCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

func execCommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// runNoCheck runs spec (the test binary as init, no stdin, output
// captured) for a test that expects Run to fail.
func runNoCheck(spec Spec) outcome {
	_, wait := background(nil, spec)
	return wait()
}

// testProcess checks exit codes, signal forwarding and the terminal, as the
// netns backend's tests do.
func (w *idWorld) testProcess(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
	}{{[]string{"sh", "-c", "exit 3"}, 3}, {[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15}, {[]string{"sandgate-no-such-command"}, 127}} {
		spec := w.spec("")
		spec.Args = c.args
		if o := sandboxRun(t, spec); o.err != nil || o.res.ExitCode != c.code {
			t.Errorf("%q: %+v %v %s", c.args, o.res, o.err, o.stderr)
		}
	}

	// SIGTERM to the process running Run reaches the command.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	spec := w.spec("waitsig")
	spec.Stdout = pw
	done := make(chan outcome, 1)
	go func() {
		o := sandboxRun(t, spec)
		pw.Close()
		done <- o
	}()
	r := bufio.NewReader(pr)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper did not get ready: %q %v (%+v)", line, err, <-done)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if o := <-done; o.err != nil || o.res.ExitCode != 42 || !strings.Contains(string(rest), "got terminated") {
		t.Errorf("SIGTERM: %+v %v %q", o.res, o.err, rest)
	}

	// A terminal: the command gets a pty of its own, owns its session,
	// reads typed lines and gets Ctrl-C.
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	term := &syncBuffer{}
	go io.Copy(term, master)
	spec = w.spec("tty")
	spec.Stdin, spec.Stdout, spec.Stderr = slave, slave, slave
	_, wait := background(t, spec)
	term.waitFor(t, "ready")
	master.Write([]byte("typed line\r"))
	term.waitFor(t, `read "typed line"`)
	master.Write([]byte{3})
	term.waitFor(t, "got interrupt")
	o := wait()
	if o.err != nil || o.res.ExitCode != 5 {
		t.Errorf("terminal session: %+v %v", o.res, o.err)
	}
	mustContain(t, term.String(), "tty /dev/pts/", "session-leader true foreground true <nil>")
}

//go:build linux

// Command probe is the e2e tests' agent inside (and outside) a sandgate
// sandbox. Each invocation runs one or more checks, separated by "+":
//
//	probe tcp 203.0.113.10:80 + udp 203.0.113.10:9 + http http://remote.test/
//
// For every check it prints one line to stdout,
//
//	PROBE {"check":"tcp","args":["203.0.113.10:80"],"ok":false,"detail":"..."}
//
// where ok says whether the operation succeeded (a connection was made, an
// answer came back), not whether that was the expected outcome: the test
// decides that, and runs the same checks outside the sandbox to show that the
// probe can succeed. The exit status is 0 when every check succeeded, 10 when
// at least one failed, and 2 on a usage error.
//
// A few commands control the process itself and are used alone: exit N,
// kill-self SIGNUM, sleep SECONDS [MARKER], signals, spawn MARKER.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/socks5"
)

// Exit statuses.
const (
	exitAllOK   = 0
	exitSomeBad = 10
	exitUsage   = 2
)

// timeout bounds every network operation of a check.
const timeout = 3 * time.Second

// result is one check's outcome, printed as JSON after "PROBE ".
type result struct {
	Check  string   `json:"check"`
	Args   []string `json:"args"`
	OK     bool     `json:"ok"`
	Detail string   `json:"detail"`
	Millis int64    `json:"ms"` // how long the check took
}

// check runs one check: it returns a detail text and nil on success, or an
// error describing the failure.
type check func(args []string) (string, error)

var checks = map[string]struct {
	nargs int // exact number of arguments; -1 for "any"
	fn    check
}{
	"tcp":        {1, checkTCP},
	"udp":        {1, checkUDP},
	"icmp":       {1, checkICMP},
	"packet":     {0, checkPacket},
	"unix":       {1, checkUnix},
	"unixsocket": {0, checkUnixSocket},
	"iouring":    {0, checkIOURing},
	"http":       {1, checkHTTP},
	"https":      {2, checkHTTPS},
	"h2":         {1, checkH2},
	"grpc":       {1, checkGRPC},
	"websocket":  {1, checkWebSocket},
	"socks5":     {1, checkSOCKS5},
	"connect":    {1, checkConnect},
	"resolve":    {1, checkResolve},
	"ptrace":     {1, checkPtrace},
	"ptrace-all": {0, checkPtraceAll},
	"procs":      {0, checkProcs},
	"loopback":   {0, checkLoopback},
	"env":        {1, checkEnv},
	"ids":        {0, checkIDs},
	"nocaps":     {0, checkNoCaps},
	"winsize":    {0, checkWinsize},
	"wait-stdin": {0, checkWaitStdin},
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		usage("no check given")
	}
	switch args[0] {
	case "exit":
		n, err := strconv.Atoi(arg(args, 1))
		if err != nil {
			usage("exit N")
		}
		os.Exit(n)
	case "kill-self":
		n, err := strconv.Atoi(arg(args, 1))
		if err != nil {
			usage("kill-self SIGNUM")
		}
		signal.Reset()
		_ = syscall.Kill(os.Getpid(), syscall.Signal(n))
		time.Sleep(10 * time.Second)
		os.Exit(99)
	case "sleep":
		secs, err := strconv.ParseFloat(arg(args, 1), 64)
		if err != nil {
			usage("sleep SECONDS [MARKER]")
		}
		time.Sleep(time.Duration(secs * float64(time.Second)))
		os.Exit(0)
	case "signals":
		signals()
	case "spawn":
		spawn(arg(args, 1))
	}

	allOK := true
	for len(args) > 0 {
		i := 0
		for i < len(args) && args[i] != "+" {
			i++
		}
		one := args[:i]
		if i < len(args) {
			args = args[i+1:]
		} else {
			args = nil
		}
		if len(one) == 0 {
			usage("empty check")
		}
		c, ok := checks[one[0]]
		if !ok {
			usage("unknown check " + one[0])
		}
		if c.nargs >= 0 && len(one)-1 != c.nargs {
			usage(fmt.Sprintf("%s takes %d argument(s)", one[0], c.nargs))
		}
		r := result{Check: one[0], Args: one[1:]}
		start := time.Now()
		detail, err := c.fn(one[1:])
		r.Millis = time.Since(start).Milliseconds()
		if err != nil {
			r.Detail = err.Error()
			allOK = false
		} else {
			r.OK = true
			r.Detail = detail
		}
		b, _ := json.Marshal(r)
		fmt.Printf("PROBE %s\n", b)
	}
	if !allOK {
		os.Exit(exitSomeBad)
	}
	os.Exit(exitAllOK)
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "probe: %s\n", msg)
	os.Exit(exitUsage)
}

// checkTCP dials ADDR directly and reads whatever the server says first.
func checkTCP(args []string) (string, error) {
	c, err := net.DialTimeout("tcp", args[0], timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return "connected to " + c.RemoteAddr().String(), nil
}

// checkUDP sends a datagram to ADDR and waits for the echo.
func checkUDP(args []string) (string, error) {
	c, err := net.DialTimeout("udp", args[0], timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	msg := "sgtest-udp-" + strconv.Itoa(os.Getpid())
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	if string(buf[:n]) != msg {
		return "", fmt.Errorf("unexpected answer %q", buf[:n])
	}
	return "echo from " + args[0], nil
}

// checkICMP sends an echo request to ADDR through an unprivileged ping
// socket and, failing that, a raw socket, and waits for the reply.
func checkICMP(args []string) (string, error) {
	dst, err := netip.ParseAddr(args[0])
	if err != nil {
		return "", err
	}
	var errs []string
	kinds := []string{"udp4", "ip4:icmp"}
	if dst.Is6() {
		kinds = []string{"udp6", "ip6:ipv6-icmp"}
	}
	for _, kind := range kinds {
		detail, err := ping(kind, dst)
		if err == nil {
			return detail, nil
		}
		errs = append(errs, kind+": "+err.Error())
	}
	return "", errors.New(strings.Join(errs, "; "))
}

func ping(kind string, dst netip.Addr) (string, error) {
	local := "0.0.0.0"
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if dst.Is6() {
		local = "::"
		typ, reply, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	c, err := icmp.ListenPacket(kind, local)
	if err != nil {
		return "", err
	}
	defer c.Close()
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("sgtest-ping")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return "", err
	}
	var to net.Addr = &net.IPAddr{IP: dst.AsSlice()}
	if strings.HasPrefix(kind, "udp") {
		to = &net.UDPAddr{IP: dst.AsSlice()}
	}
	if _, err := c.WriteTo(b, to); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return "", err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err == nil && m.Type == reply {
			return fmt.Sprintf("%s echo reply from %v", kind, from), nil
		}
	}
}

// checkPacket opens a packet socket and looks for an interface other than
// loopback to send on: both are needed to put frames on a wire.
func checkPacket([]string) (string, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return "", fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	var names []string
	for _, ifc := range ifs {
		names = append(names, ifc.Name)
		if ifc.Flags&net.FlagLoopback == 0 && ifc.Flags&net.FlagUp != 0 {
			return "packet socket and interface " + ifc.Name, nil
		}
	}
	return "", fmt.Errorf("packet socket opened but no interface besides loopback (%s)", strings.Join(names, ","))
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// checkUnix connects to the unix socket at PATH and reads its banner.
func checkUnix(args []string) (string, error) {
	c, err := net.DialTimeout("unix", args[0], timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("connected, reading: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// checkUnixSocket only creates an AF_UNIX socket, connecting nowhere.
func checkUnixSocket([]string) (string, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("socket(AF_UNIX): %w", err)
	}
	unix.Close(fd)
	return "created", nil
}

// checkIOURing only sets up an io_uring instance, which could create
// sockets without the socket system call.
func checkIOURing([]string) (string, error) {
	var params [120]byte // struct io_uring_params, zeroed
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
	if errno != 0 {
		return "", fmt.Errorf("io_uring_setup: %w", errno)
	}
	unix.Close(int(fd))
	return "created", nil
}

// checkHTTP GETs URL through $HTTP_PROXY (when set; directly otherwise).
func checkHTTP(args []string) (string, error) {
	return get(args[0], nil)
}

// checkHTTPS GETs URL through $HTTPS_PROXY (CONNECT), trusting only the CA
// certificate in CAFILE.
func checkHTTPS(args []string) (string, error) {
	pem, err := os.ReadFile(args[1])
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return "", errors.New("no certificate in " + args[1])
	}
	return get(args[0], &tls.Config{RootCAs: pool})
}

func get(u string, tc *tls.Config) (string, error) {
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tc, DisableKeepAlives: true}
	cl := &http.Client{Transport: tr, Timeout: timeout}
	resp, err := cl.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	detail := fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		if e := resp.Header.Get("X-Proxy-Error"); e != "" {
			detail += " [X-Proxy-Error: " + e + "]"
		}
		return "", errors.New(detail)
	}
	return detail, nil
}

// converse talks to the service behind an open tunnel to port: the banner
// service (port 22) is read and echoes a line; anything else gets an HTTP
// GET and must answer with the remote's marker.
func converse(c net.Conn, host string, port int) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(c)
	if port == 22 {
		banner, err := br.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("reading banner: %w", err)
		}
		if _, err := io.WriteString(c, "sgtest-echo\n"); err != nil {
			return "", err
		}
		echo, err := br.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("reading echo: %w", err)
		}
		if echo != "sgtest-echo\n" {
			return "", fmt.Errorf("bad echo %q", echo)
		}
		return strings.TrimSpace(banner), nil
	}
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", host)
	all, err := io.ReadAll(br)
	if err != nil && len(all) == 0 {
		return "", err
	}
	s := string(all)
	if !strings.HasPrefix(s, "HTTP/1.") {
		return "", fmt.Errorf("not HTTP: %q", s)
	}
	if i := strings.Index(s, "\r\n\r\n"); i >= 0 {
		s = strings.SplitN(s, "\r\n", 2)[0] + ": " + strings.TrimSpace(s[i+4:])
	}
	return s, nil
}

// proxyAddr takes host:port from the first set variable among names.
func proxyAddr(names ...string) (string, error) {
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil {
			return "", fmt.Errorf("%s=%q: %w", n, v, err)
		}
		return u.Host, nil
	}
	return "", fmt.Errorf("none of %s is set", strings.Join(names, ", "))
}

// checkSOCKS5 connects to HOST:PORT through the SOCKS5 proxy in $ALL_PROXY,
// passing the name to the proxy (socks5h), then talks to the service.
func checkSOCKS5(args []string) (string, error) {
	host, portS, err := net.SplitHostPort(args[0])
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return "", err
	}
	pa, err := proxyAddr("ALL_PROXY", "all_proxy")
	if err != nil {
		return "", err
	}
	c, err := net.DialTimeout("tcp", pa, timeout)
	if err != nil {
		return "", fmt.Errorf("dialling the proxy: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := socks5.Handshake(c, host, uint16(port), nil); err != nil {
		var re *socks5.ReplyError
		if errors.As(err, &re) {
			return "", fmt.Errorf("socks reply %d", re.Code)
		}
		return "", fmt.Errorf("SOCKS5 handshake: %w", err)
	}
	return converse(c, host, port)
}

// checkConnect opens an HTTP CONNECT tunnel to HOST:PORT through the proxy in
// $HTTPS_PROXY and talks plain bytes to the service behind it.
func checkConnect(args []string) (string, error) {
	host, portS, err := net.SplitHostPort(args[0])
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return "", err
	}
	pa, err := proxyAddr("HTTPS_PROXY", "https_proxy")
	if err != nil {
		return "", err
	}
	c, err := net.DialTimeout("tcp", pa, timeout)
	if err != nil {
		return "", fmt.Errorf("dialling the proxy: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", args[0], args[0])
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return "", fmt.Errorf("reading CONNECT response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("CONNECT: %s [X-Proxy-Error: %s]", resp.Status, resp.Header.Get("X-Proxy-Error"))
	}
	return converse(&bufferedConn{Conn: c, r: br}, host, port)
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// checkResolve looks NAME up with the system resolver configuration.
func checkResolve(args []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, args[0])
	if err != nil {
		return "", err
	}
	return strings.Join(addrs, ","), nil
}

// checkPtrace tries to attach to PID with ptrace.
func checkPtrace(args []string) (string, error) {
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		return "", err
	}
	return attach(pid)
}

// checkPtraceAll tries to attach to every process this one can see, itself
// and its own children aside; success on any is success.
func checkPtraceAll([]string) (string, error) {
	pids, err := listPids()
	if err != nil {
		return "", err
	}
	var fails []string
	for _, pid := range pids {
		if pid == os.Getpid() {
			continue
		}
		d, err := attach(pid)
		if err == nil {
			return d, nil
		}
		fails = append(fails, err.Error())
	}
	return "", fmt.Errorf("no process attachable: [%s]", strings.Join(fails, "; "))
}

func attach(pid int) (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	name := comm(pid)
	if err := unix.PtraceAttach(pid); err != nil {
		return "", fmt.Errorf("pid %d (%s): %w", pid, name, err)
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
	_ = unix.PtraceDetach(pid)
	return fmt.Sprintf("attached to pid %d (%s)", pid, name), nil
}

func listPids() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// checkProcs lists the visible processes as pid:comm.
func checkProcs([]string) (string, error) {
	pids, err := listPids()
	if err != nil {
		return "", err
	}
	var out []string
	for _, p := range pids {
		out = append(out, fmt.Sprintf("%d:%s", p, comm(p)))
	}
	return strings.Join(out, " "), nil
}

// checkLoopback listens on 127.0.0.1 and talks to itself.
func checkLoopback([]string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, _ = io.WriteString(c, "loopback-ok\n")
			c.Close()
		}
	}()
	c, err := net.DialTimeout("tcp", l.Addr().String(), timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line) + " via " + l.Addr().String(), nil
}

// checkEnv succeeds when NAME is set, reporting its value.
func checkEnv(args []string) (string, error) {
	v, ok := os.LookupEnv(args[0])
	if !ok {
		return "", errors.New(args[0] + " is not set")
	}
	return v, nil
}

// checkIDs reports the real and effective user and group ids.
func checkIDs([]string) (string, error) {
	return fmt.Sprintf("uid=%d euid=%d gid=%d egid=%d", os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid()), nil
}

// checkNoCaps succeeds when this process holds no capability at all (in the
// effective, permitted, inheritable, ambient and bounding sets) and has
// no_new_privs set.
func checkNoCaps([]string) (string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", err
	}
	var bad, all []string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			all = append(all, k+"="+v)
			if strings.Trim(v, "0") != "" {
				bad = append(bad, k+"="+v)
			}
		case "NoNewPrivs":
			all = append(all, k+"="+v)
			if v != "1" {
				bad = append(bad, k+"="+v)
			}
		}
	}
	if len(bad) > 0 {
		return "", errors.New(strings.Join(bad, " "))
	}
	return strings.Join(all, " "), nil
}

// checkWinsize reports the terminal size of stdin.
func checkWinsize([]string) (string, error) {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%dx%d", ws.Row, ws.Col), nil
}

// checkWaitStdin reads stdin to its end.
func checkWaitStdin([]string) (string, error) {
	n, err := io.Copy(io.Discard, os.Stdin)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("read %d bytes", n), nil
}

// signals prints READY, then one line per signal received ("GOT <name>",
// with the terminal size for SIGWINCH). SIGTERM ends it with status 42; the
// line "exit" on stdin ends it with status 43.
func signals() {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGWINCH, syscall.SIGUSR1)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			fmt.Printf("LINE %s\n", line)
			if line == "exit" {
				os.Exit(43)
			}
		}
	}()
	fmt.Println("READY")
	for s := range ch {
		sig := s.(syscall.Signal)
		extra := ""
		if sig == syscall.SIGWINCH {
			if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
				extra = fmt.Sprintf(" %dx%d", ws.Row, ws.Col)
			}
		}
		fmt.Printf("GOT %s%s\n", unix.SignalName(sig), extra)
		if sig == syscall.SIGTERM {
			os.Exit(42)
		}
	}
}

// spawn starts a detached "probe sleep 60 MARKER" in a new session, prints
// its pid and exits without waiting for it.
func spawn(marker string) {
	if marker == "" {
		usage("spawn MARKER")
	}
	cmd := exec.Command("/proc/self/exe", "sleep", "60", marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Printf("SPAWN-FAILED %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("SPAWNED %d\n", cmd.Process.Pid)
	os.Exit(0)
}

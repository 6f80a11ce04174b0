//go:build linux

package sandbox

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/dirgrant"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

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
	case "id-tdial":
		return transparentHelper(args)
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
		n, err := unix.Getxattr(".", dirgrant.XattrName, buf)
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
		_, err := Run(context.Background(), Spec{Args: []string{"true"}, Network: NetworkProxy, Backend: BackendIdentity,
			AllowLocalBinding: true, Gate: denyAllGate(), Stdin: eofReader{}, leaser: c.leaser()})
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
		if err := refuseUserNamespaces(); err != nil {
			fmt.Println("seccomp:", err)
			return 3
		}
		env := append(os.Environ(), helperEnv+"=id-count")
		res, err := Run(context.Background(), Spec{Args: []string{c.Bin, c.Count}, Env: env, Network: NetworkNone,
			Backend: BackendAuto, Dir: c.Dir, Executable: c.Bin, Stdin: eofReader{}, leaser: c.leaser()})
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
// "socks-auth=ADDR", "socks-noauth=ADDR", "direct=ADDR", "direct-retry=ADDR"
// (up to 40 tries, until one connects), "udp=ADDR",
// "abstract=NAME", "own-abstract", "unix-socket".
func idNetHelper(args []string) int {
	for _, a := range args {
		kind, addr, _ := strings.Cut(a, "=")
		switch kind {
		case "http-auth", "http-noauth":
			fmt.Printf("%s %s %s\n", kind, addr, proxyCode(addr, kind == "http-auth"))
		case "socks-auth", "socks-noauth":
			host, port, _ := net.SplitHostPort(addr)
			fmt.Printf("%s %s %s\n", kind, addr, socksLine(os.Getenv("ALL_PROXY"), host, port, kind == "socks-auth"))
		case "direct":
			c, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err == nil {
				c.Close()
			}
			fmt.Printf("direct %s %s\n", addr, errName(err))
		case "direct-retry":
			// Keep trying for a while: a direct connection must never
			// get through, not even for a moment.
			var err error
			for range 40 {
				var c net.Conn
				if c, err = net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
					c.Close()
					break
				}
				time.Sleep(5 * time.Millisecond)
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

// proxyCode gets http://target/ through HTTP_PROXY, with or without its
// credentials, and returns the status code, and the body of a 200.
func proxyCode(target string, auth bool) string {
	status, body, err := proxyHTTPGet(os.Getenv("HTTP_PROXY"), target, auth)
	if err != nil {
		return "dial-proxy " + errName(err)
	}
	code := "none"
	if f := strings.Fields(status); len(f) > 1 {
		code = f[1]
	}
	if code != "200" {
		body = ""
	}
	return strings.TrimSpace(code + " " + body)
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

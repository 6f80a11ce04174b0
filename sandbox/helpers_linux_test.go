//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// helperEnv selects a helper when the test binary runs as the command
// inside a sandbox (or as a plain child of the test).
const helperEnv = "SANDGATE_SANDBOX_TEST_HELPER"

// runHelper is the body of the test binary when it runs as a helper.
func runHelper(name string, args []string) int {
	switch name {
	case "status":
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		os.Stdout.Write(b)
		bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
		fmt.Printf("Securebits:\t%d %v\n", bits, err)
		fmt.Printf("Uid-inside:\t%d\n", os.Getuid())
		return 0
	case "sockets":
		try := func(label string, f func() error) {
			err := f()
			if err == nil {
				fmt.Printf("%s ok\n", label)
			} else {
				fmt.Printf("%s %s\n", label, errName(err))
			}
		}
		try("unix-stream", func() error { return closeFD(unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)) })
		try("unix-dgram", func() error { return closeFD(unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)) })
		try("unix-highbits", func() error {
			// The kernel reads the domain as a 32-bit int: high bits are junk.
			fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, 1<<32|unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if e != 0 {
				return e
			}
			return unix.Close(int(fd))
		})
		try("socketpair", func() error {
			p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err == nil {
				unix.Close(p[0])
				unix.Close(p[1])
			}
			return err
		})
		try("socketpair-dgram", func() error {
			p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
			if err == nil {
				unix.Close(p[0])
				unix.Close(p[1])
			}
			return err
		})
		try("inet", func() error { return closeFD(unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)) })
		try("inet6", func() error { return closeFD(unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM, 0)) })
		try("io_uring_setup", func() error {
			var params [120]byte
			fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
			if e != 0 {
				return e
			}
			return unix.Close(int(fd))
		})
		try("io_uring_enter", func() error {
			_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, 1000, 0, 0, 0, 0, 0)
			if e != 0 {
				return e
			}
			return nil
		})
		if len(args) > 0 {
			try("unix-connect", func() error {
				c, err := net.Dial("unix", args[0])
				if err == nil {
					c.Close()
				}
				return err
			})
		}
		return 0
	case "net":
		ifs, err := net.Interfaces()
		if err != nil {
			fmt.Println("interfaces error", err)
		}
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		sort.Strings(names)
		fmt.Printf("interfaces %s\n", strings.Join(names, ","))
		for _, a := range args {
			c, err := net.DialTimeout("tcp", a, 3*time.Second)
			if err != nil {
				fmt.Printf("tcp %s %s\n", a, errName(err))
				continue
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			fmt.Printf("tcp %s ok %s\n", a, strings.TrimSpace(line))
		}
		// Raw and packet sockets: refused (no CAP_NET_RAW), and even a UDP
		// datagram has no route anywhere but the private loopback.
		_, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		fmt.Printf("raw %s\n", errName(err))
		_, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		fmt.Printf("packet %s\n", errName(err))
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err == nil {
			err = unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Port: 53, Addr: [4]byte{192, 0, 2, 1}})
			unix.Close(fd)
		}
		fmt.Printf("udp4 %s\n", errName(err))
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM, 0)
		if err == nil {
			err = unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet6{Port: 53, Addr: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}})
			unix.Close(fd)
		}
		fmt.Printf("udp6 %s\n", errName(err))
		return 0
	case "keyring":
		return keyringHelper(args)
	case "families":
		return familiesHelper()
	case "unixconnect":
		return unixConnectHelper(args)
	case "fsops":
		return fsopsHelper(args)
	case "env":
		for _, k := range args {
			v, ok := os.LookupEnv(k)
			fmt.Printf("%s=%q %v\n", k, v, ok)
		}
		return 0
	case "pid":
		fmt.Printf("pid %d ppid %d\n", os.Getpid(), os.Getppid())
		ents, _ := os.ReadDir("/proc")
		n := 0
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				n++
			}
		}
		fmt.Printf("procs %d\n", n)
		if len(args) > 0 {
			p, _ := strconv.Atoi(args[0])
			fmt.Printf("kill %s\n", errName(unix.Kill(p, 0)))
		}
		fmt.Printf("kill1 %s\n", errName(unix.Kill(1, unix.SIGKILL)))
		_, err := os.ReadFile("/proc/1/environ")
		fmt.Printf("init-environ %s\n", errName(err))
		return 0
	case "fds":
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		for _, e := range ents {
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			fmt.Printf("fd %s %s\n", e.Name(), target)
		}
		return 0
	case "pwd":
		d, _ := os.Getwd()
		fmt.Println(d)
		return 0
	case "waitsig":
		c := make(chan os.Signal, 1)
		signal.Notify(c, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
		fmt.Println("ready")
		select {
		case s := <-c:
			fmt.Printf("got %v\n", s)
			return 42
		case <-time.After(20 * time.Second):
			fmt.Println("timeout")
			return 1
		}
	case "tty":
		ws, werr := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
		tty, _ := os.Readlink("/proc/self/fd/0")
		sid, _ := unix.Getsid(0)
		fg, ferr := unix.IoctlGetInt(0, unix.TIOCGPGRP)
		fmt.Printf("tty %s\r\n", tty)
		if werr == nil {
			fmt.Printf("size %d %d\r\n", ws.Row, ws.Col)
		}
		fmt.Printf("session-leader %v foreground %v %v\r\n", sid == os.Getpid(), fg == unix.Getpgrp(), ferr)
		// TIOCSTI into our own terminal is harmless; the host's is not ours.
		c := make(chan os.Signal, 1)
		signal.Notify(c, unix.SIGINT, unix.SIGWINCH)
		fmt.Printf("ready\r\n")
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		fmt.Printf("read %q\r\n", strings.TrimRight(line, "\r\n"))
		for {
			select {
			case s := <-c:
				if s == unix.SIGWINCH {
					ws, _ := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
					fmt.Printf("winch %d %d\r\n", ws.Row, ws.Col)
					continue
				}
				fmt.Printf("got %v\r\n", s)
				return 5
			case <-time.After(20 * time.Second):
				fmt.Printf("timeout\r\n")
				return 1
			}
		}
	case "hang":
		time.Sleep(time.Hour)
		return 0
	case "run-parent":
		return runParentHelper()
	case "ns-sleeper":
		return nsSleeperHelper()
	case "proxy":
		return proxyHelper(args)
	case "unpriv":
		// Runs as an unprivileged user: a whole sandbox (proxy mode with a
		// gate that allows nothing) whose command prints its status.
		exe, _ := os.Executable()
		env := append(os.Environ(), helperEnv+"=status")
		res, err := Run(context.Background(), Spec{Args: []string{exe}, Env: env, Network: NetworkProxy,
			Gate: denyAllGate(), Executable: exe, Stdin: eofReader{}})
		if err != nil {
			fmt.Println("Run:", err)
			return 3
		}
		return res.ExitCode
	case "nouserns":
		// Runs in a user namespace of its own whose limit on nested user
		// namespaces is 0: Run must fail with ErrUnavailable.
		if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0); err != nil {
			fmt.Println("cannot set the limit:", err)
			return 3
		}
		exe, _ := os.Executable()
		_, err := Run(context.Background(), Spec{Args: []string{"true"}, Network: NetworkNone, Executable: exe, Stdin: eofReader{}})
		fmt.Println(err)
		if errors.Is(err, ErrUnavailable) {
			return 0
		}
		return 4
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
	return 99
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func closeFD(fd int, err error) error {
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// errName names an error by its errno ("ok" for nil).
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
	}
	return "error:" + err.Error()
}

// proxyHelper talks to sandgate's proxies the way a client inside the
// sandbox would: args are "http TARGET", "socks HOST PORT" or "direct ADDR".
func proxyHelper(args []string) int {
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "http":
			target := args[i+1]
			i++
			status, body, err := proxyHTTPGet(os.Getenv("HTTP_PROXY"), target, false)
			if err != nil {
				fmt.Printf("http %s dial-proxy %s\n", target, errName(err))
				continue
			}
			fmt.Printf("http %s %q %q\n", target, status, body)
		case "socks":
			host, port := args[i+1], args[i+2]
			i += 2
			fmt.Printf("socks %s:%s %s\n", host, port, socksLine(os.Getenv("ALL_PROXY"), host, port, false))
		case "direct":
			a := args[i+1]
			i++
			c, err := net.DialTimeout("tcp", a, 3*time.Second)
			if err == nil {
				c.Close()
			}
			fmt.Printf("direct %s %s\n", a, errName(err))
		}
	}
	return 0
}

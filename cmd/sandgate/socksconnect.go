package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/proxyenv"
)

// newSOCKSConnectCmd is the ssh ProxyCommand sandgate gives to commands it
// runs (through GIT_SSH_COMMAND), so no helper binary is needed inside the
// sandbox: it opens a SOCKS5 CONNECT to HOST:PORT and relays stdin/stdout.
func newSOCKSConnectCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "socks-connect SOCKSADDR HOST PORT",
		Short:  "Relay stdin/stdout to HOST:PORT through a SOCKS5 proxy (an ssh ProxyCommand)",
		Hidden: true,
		Args:   cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			port, err := parsePort(args[2])
			if err != nil {
				return usageErr("%v", err)
			}
			conn, err := socksDial(args[0], args[1], port, os.Getenv(proxyenv.SOCKSUserEnv), os.Getenv(proxyenv.SOCKSPasswordEnv))
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			defer conn.Close()
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(conn, os.Stdin)
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				close(done)
			}()
			_, err = io.Copy(os.Stdout, conn)
			if err != nil {
				return &exitError{code: exitFailure, err: fmt.Errorf("relaying from %s:%d: %w", args[1], port, err)}
			}
			return nil
		},
	}
}

// socksReplyText names the SOCKS5 reply codes (RFC 1928 section 6).
var socksReplyText = map[byte]string{
	1: "general SOCKS server failure", 2: "connection not allowed by ruleset",
	3: "network unreachable", 4: "host unreachable", 5: "connection refused",
	6: "TTL expired", 7: "command not supported", 8: "address type not supported",
}

// socksDial opens a SOCKS5 CONNECT to host:port through the proxy at addr.
func socksDial(addr, host string, port uint16, user, pass string) (net.Conn, error) {
	if len(host) > 255 {
		return nil, fmt.Errorf("host name too long for SOCKS5: %d bytes", len(host))
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connecting to SOCKS5 proxy %s: %w", addr, err)
	}
	fail := func(err error) (net.Conn, error) {
		conn.Close()
		return nil, fmt.Errorf("SOCKS5 proxy %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	method := byte(0)
	if user != "" {
		method = 2
	}
	if _, err := conn.Write([]byte{5, 1, method}); err != nil {
		return fail(err)
	}
	var sel [2]byte
	if _, err := io.ReadFull(conn, sel[:]); err != nil {
		return fail(err)
	}
	if sel[0] != 5 || sel[1] != method {
		return fail(fmt.Errorf("authentication method refused (reply %d %d)", sel[0], sel[1]))
	}
	if method == 2 {
		if len(user) > 255 || len(pass) > 255 {
			return fail(errors.New("user or password longer than 255 bytes"))
		}
		msg := append([]byte{1, byte(len(user))}, user...)
		msg = append(append(msg, byte(len(pass))), pass...)
		if _, err := conn.Write(msg); err != nil {
			return fail(err)
		}
		var st [2]byte
		if _, err := io.ReadFull(conn, st[:]); err != nil {
			return fail(err)
		}
		if st[1] != 0 {
			return fail(errors.New("authentication failed"))
		}
	}
	req := []byte{5, 1, 0}
	if ip := net.ParseIP(host); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			req = append(append(req, 1), v4...)
		} else {
			req = append(append(req, 4), ip.To16()...)
		}
	} else {
		req = append(append(req, 3, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := conn.Write(req); err != nil {
		return fail(err)
	}
	var head [4]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return fail(err)
	}
	if head[1] != 0 {
		txt := socksReplyText[head[1]]
		if txt == "" {
			txt = "reply " + strconv.Itoa(int(head[1]))
		}
		return fail(fmt.Errorf("CONNECT %s: %s", net.JoinHostPort(host, strconv.Itoa(int(port))), txt))
	}
	var skip int
	switch head[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return fail(err)
		}
		skip = int(l[0]) + 2
	default:
		return fail(fmt.Errorf("bad address type %d in reply", head[3]))
	}
	if _, err := io.CopyN(io.Discard, conn, int64(skip)); err != nil {
		return fail(err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

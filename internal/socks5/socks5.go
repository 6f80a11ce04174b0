// Package socks5 is sandgate's one SOCKS5 client: the client side of a
// CONNECT (RFC 1928) with no authentication or with a username and password
// (RFC 1929). `sandgate socks-connect`, the proxy's tests, the benchmarks and
// the e2e probe all speak SOCKS5 through it; the server side lives in the
// proxy package.
//
// A host that parses as an IP address (without a zone) is sent as an IPv4 or
// IPv6 address, anything else as a domain name for the proxy to resolve
// (socks5h behaviour). An IPv4-mapped IPv6 address stays IPv6.
package socks5

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Protocol numbers (RFC 1928, RFC 1929).
const (
	Version = 5

	MethodNoAuth   = 0x00
	MethodUserPass = 0x02
	MethodNone     = 0xFF

	CmdConnect      = 1
	CmdBind         = 2
	CmdUDPAssociate = 3

	AtypIPv4   = 1
	AtypDomain = 3
	AtypIPv6   = 4

	ReplySucceeded = 0
)

// Auth is a username and password (RFC 1929).
type Auth struct {
	User     string
	Password string
}

// ReplyError is a reply other than success to a request.
type ReplyError struct {
	Code   byte   // the reply code
	Target string // host:port of the request
}

var replyText = map[byte]string{
	1: "general SOCKS server failure", 2: "connection not allowed by ruleset",
	3: "network unreachable", 4: "host unreachable", 5: "connection refused",
	6: "TTL expired", 7: "command not supported", 8: "address type not supported",
}

// ReplyText names a reply code (RFC 1928 section 6).
func ReplyText(code byte) string {
	if t, ok := replyText[code]; ok {
		return t
	}
	return "reply " + strconv.Itoa(int(code))
}

func (e *ReplyError) Error() string {
	return "CONNECT " + e.Target + ": " + ReplyText(e.Code)
}

// Dial connects to the SOCKS5 proxy at proxyAddr and has it CONNECT to
// host:port, authenticating with auth when it is not nil. ctx bounds the
// connection and, through its deadline, the handshake; the returned
// connection has no deadline. Errors say which step failed; a refusal by the
// proxy wraps a *ReplyError.
func Dial(ctx context.Context, proxyAddr, host string, port uint16, auth *Auth) (net.Conn, error) {
	if len(host) > 255 {
		return nil, fmt.Errorf("host name too long for SOCKS5: %d bytes", len(host))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("connecting to SOCKS5 proxy %s: %w", proxyAddr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	_, err = Handshake(conn, host, port, auth)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("SOCKS5 proxy %s: %w", proxyAddr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// Handshake runs the client side of a CONNECT to host:port on conn, an open
// connection to a SOCKS5 proxy (or a tunnel to one), offering exactly one
// method: username/password when auth is not nil, else none. It returns the
// bound address the proxy reports (invalid when it reports a name).
func Handshake(conn io.ReadWriter, host string, port uint16, auth *Auth) (netip.AddrPort, error) {
	req, err := AppendRequest(nil, CmdConnect, host, port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	method := byte(MethodNoAuth)
	if auth != nil {
		method = MethodUserPass
	}
	if _, err := conn.Write([]byte{Version, 1, method}); err != nil {
		return netip.AddrPort{}, err
	}
	var sel [2]byte
	if _, err := io.ReadFull(conn, sel[:]); err != nil {
		return netip.AddrPort{}, err
	}
	if sel[0] != Version || sel[1] != method {
		return netip.AddrPort{}, fmt.Errorf("authentication method refused (reply %d %d)", sel[0], sel[1])
	}
	if auth != nil {
		if err := authenticate(conn, auth); err != nil {
			return netip.AddrPort{}, err
		}
	}
	if _, err := conn.Write(req); err != nil {
		return netip.AddrPort{}, err
	}
	code, bound, err := ReadReply(conn)
	if code != ReplySucceeded {
		// A refusal counts even when the rest of the reply is missing.
		return netip.AddrPort{}, &ReplyError{Code: code, Target: net.JoinHostPort(host, strconv.Itoa(int(port)))}
	}
	return bound, err
}

// authenticate sends an RFC 1929 request and reads its status.
func authenticate(conn io.ReadWriter, auth *Auth) error {
	if len(auth.User) > 255 || len(auth.Password) > 255 {
		return errors.New("user or password longer than 255 bytes")
	}
	msg := append([]byte{1, byte(len(auth.User))}, auth.User...)
	msg = append(append(msg, byte(len(auth.Password))), auth.Password...)
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	var st [2]byte
	if _, err := io.ReadFull(conn, st[:]); err != nil {
		return err
	}
	if st[1] != 0 {
		return errors.New("authentication failed")
	}
	return nil
}

// AppendRequest appends a request (VER CMD RSV ATYP DST.ADDR DST.PORT) for
// cmd to host:port to b. It fails only for a name longer than 255 bytes.
func AppendRequest(b []byte, cmd byte, host string, port uint16) ([]byte, error) {
	b = append(b, Version, cmd, 0)
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		if a.Is4() {
			b = append(b, AtypIPv4)
		} else {
			b = append(b, AtypIPv6)
		}
		b = append(b, a.AsSlice()...)
	} else {
		if len(host) > 255 {
			return nil, fmt.Errorf("host name too long for SOCKS5: %d bytes", len(host))
		}
		b = append(append(b, AtypDomain, byte(len(host))), host...)
	}
	return binary.BigEndian.AppendUint16(b, port), nil
}

// ReadReply reads one reply (VER REP RSV ATYP BND.ADDR BND.PORT) and returns
// its code and the bound address (invalid for a domain name). Once its first
// four bytes are read, the code is returned even when the rest cannot be.
func ReadReply(r io.Reader) (byte, netip.AddrPort, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, netip.AddrPort{}, err
	}
	code := head[1]
	if head[0] != Version {
		return code, netip.AddrPort{}, fmt.Errorf("reply version %d", head[0])
	}
	var addr []byte
	switch head[3] {
	case AtypIPv4:
		addr = make([]byte, 4+2)
	case AtypIPv6:
		addr = make([]byte, 16+2)
	case AtypDomain:
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return code, netip.AddrPort{}, err
		}
		addr = make([]byte, int(l[0])+2)
	default:
		return code, netip.AddrPort{}, fmt.Errorf("bad address type %d in reply", head[3])
	}
	if _, err := io.ReadFull(r, addr); err != nil {
		return code, netip.AddrPort{}, err
	}
	if head[3] == AtypDomain {
		return code, netip.AddrPort{}, nil
	}
	ip, _ := netip.AddrFromSlice(addr[:len(addr)-2])
	return code, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(addr[len(addr)-2:])), nil
}

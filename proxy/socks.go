package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/sandgate/sandgate/decide"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/policy"
)

// SOCKS5 constants (RFC 1928, RFC 1929).
const (
	socksVersion     = 5
	socksAuthVersion = 1

	methodNoAuth   = 0x00
	methodUserPass = 0x02
	methodNone     = 0xFF

	cmdConnect = 1
	cmdBind    = 2
	cmdUDP     = 3

	atypIPv4   = 1
	atypDomain = 3
	atypIPv6   = 4

	repSucceeded          = 0
	repGeneralFailure     = 1
	repNotAllowed         = 2
	repNetworkUnreachable = 3
	repHostUnreachable    = 4
	repConnectionRefused  = 5
	repCmdNotSupported    = 7
	repAtypNotSupported   = 8
)

// socksError is a malformed or unsupported SOCKS message. reply is the
// SOCKS reply code to send before closing, or 0 when no reply fits.
type socksError struct {
	reply byte
	msg   string
	err   error
}

func (e *socksError) Error() string {
	if e.err != nil {
		return "socks5: " + e.msg + ": " + e.err.Error()
	}
	return "socks5: " + e.msg
}

func (e *socksError) Unwrap() error { return e.err }

// readFull reads len(b) bytes, naming what it was reading when it fails.
func readFull(r io.Reader, b []byte, what string, reply byte) error {
	if _, err := io.ReadFull(r, b); err != nil {
		return &socksError{reply: reply, msg: "reading " + what, err: err}
	}
	return nil
}

// readSOCKSGreeting reads the client's greeting (VER NMETHODS METHODS) and
// returns the offered methods.
func readSOCKSGreeting(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if err := readFull(r, hdr[:], "greeting", 0); err != nil {
		return nil, err
	}
	if hdr[0] != socksVersion {
		return nil, &socksError{msg: fmt.Sprintf("greeting: unsupported version %d (only 5 is spoken)", hdr[0])}
	}
	if hdr[1] == 0 {
		return nil, &socksError{reply: methodNone, msg: "greeting offers no authentication method"}
	}
	methods := make([]byte, hdr[1])
	if err := readFull(r, methods, "greeting methods", 0); err != nil {
		return nil, err
	}
	return methods, nil
}

// readSOCKSAuth reads an RFC 1929 username/password request.
func readSOCKSAuth(r io.Reader) (user, pass string, err error) {
	var hdr [2]byte
	if err := readFull(r, hdr[:], "authentication", 0); err != nil {
		return "", "", err
	}
	if hdr[0] != socksAuthVersion {
		return "", "", &socksError{reply: 1, msg: fmt.Sprintf("authentication: unsupported version %d (want 1)", hdr[0])}
	}
	buf := make([]byte, int(hdr[1])+1)
	if err := readFull(r, buf, "user name", 0); err != nil {
		return "", "", err
	}
	user = string(buf[:hdr[1]])
	plen := int(buf[hdr[1]])
	pbuf := make([]byte, plen)
	if err := readFull(r, pbuf, "password", 0); err != nil {
		return "", "", err
	}
	return user, string(pbuf), nil
}

// socksRequest is a parsed SOCKS5 request.
type socksRequest struct {
	cmd  byte
	atyp byte
	host string // a domain name as sent, or the canonical text of an address
	port uint16
}

// readSOCKSRequest reads VER CMD RSV ATYP DST.ADDR DST.PORT. Errors carry the
// reply code to send, when one fits.
func readSOCKSRequest(r io.Reader) (socksRequest, error) {
	var req socksRequest
	var hdr [4]byte
	if err := readFull(r, hdr[:], "request", repGeneralFailure); err != nil {
		return req, err
	}
	if hdr[0] != socksVersion {
		return req, &socksError{reply: repGeneralFailure, msg: fmt.Sprintf("request: unsupported version %d (want 5)", hdr[0])}
	}
	req.cmd, req.atyp = hdr[1], hdr[3]
	switch req.atyp {
	case atypIPv4:
		var a [4]byte
		if err := readFull(r, a[:], "IPv4 address", repGeneralFailure); err != nil {
			return req, err
		}
		req.host = netip.AddrFrom4(a).String()
	case atypIPv6:
		var a [16]byte
		if err := readFull(r, a[:], "IPv6 address", repGeneralFailure); err != nil {
			return req, err
		}
		req.host = netip.AddrFrom16(a).String()
	case atypDomain:
		var n [1]byte
		if err := readFull(r, n[:], "domain name length", repGeneralFailure); err != nil {
			return req, err
		}
		if n[0] == 0 {
			return req, &socksError{reply: repGeneralFailure, msg: "request: empty domain name"}
		}
		name := make([]byte, n[0])
		if err := readFull(r, name, "domain name", repGeneralFailure); err != nil {
			return req, err
		}
		req.host = string(name)
	default:
		return req, &socksError{reply: repAtypNotSupported, msg: fmt.Sprintf("request: unsupported address type %d", req.atyp)}
	}
	var p [2]byte
	if err := readFull(r, p[:], "port", repGeneralFailure); err != nil {
		return req, err
	}
	req.port = binary.BigEndian.Uint16(p[:])
	if req.port == 0 && req.cmd == cmdConnect {
		return req, &socksError{reply: repGeneralFailure, msg: fmt.Sprintf("request: port 0 for %q", req.host)}
	}
	return req, nil
}

// appendSOCKSReply appends a reply with code rep and bound address bind
// (0.0.0.0:0 when bind is not a TCP address).
func appendSOCKSReply(b []byte, rep byte, bind net.Addr) []byte {
	b = append(b, socksVersion, rep, 0)
	var ap netip.AddrPort
	if ta, ok := bind.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	}
	addr := ap.Addr().Unmap()
	switch {
	case addr.Is4():
		a := addr.As4()
		b = append(b, atypIPv4)
		b = append(b, a[:]...)
	case addr.Is6():
		a := addr.As16()
		b = append(b, atypIPv6)
		b = append(b, a[:]...)
	default:
		b = append(b, atypIPv4, 0, 0, 0, 0)
		ap = netip.AddrPort{}
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// chooseMethod picks the authentication method from those offered. With
// credentials configured only username/password is acceptable; without,
// no-auth is preferred and username/password accepts anything.
func (s *Server) chooseMethod(methods []byte) byte {
	has := func(m byte) bool {
		for _, x := range methods {
			if x == m {
				return true
			}
		}
		return false
	}
	switch {
	case s.authOn && has(methodUserPass):
		return methodUserPass
	case s.authOn:
		return methodNone
	case has(methodNoAuth):
		return methodNoAuth
	case has(methodUserPass):
		return methodUserPass
	}
	return methodNone
}

func writeSOCKSReply(c net.Conn, rep byte, bind net.Addr) error {
	_, err := c.Write(appendSOCKSReply(make([]byte, 0, 22), rep, bind))
	return err
}

// socksHandshake reads the client's greeting, authenticates it and reads its
// request, answering each step. It returns ok only for a CONNECT request,
// which the caller must answer; otherwise the client has had its answer and
// is to be closed. The whole handshake reads at most MaxHeaderBytes.
func (s *Server) socksHandshake(c net.Conn, client string) (req socksRequest, ok bool) {
	r := &io.LimitedReader{R: c, N: int64(s.lim.MaxHeaderBytes)}
	methods, err := readSOCKSGreeting(r)
	if err != nil {
		var se *socksError
		if errors.As(err, &se) && se.reply == methodNone {
			c.Write([]byte{socksVersion, methodNone})
		}
		s.logf("proxy: SOCKS client %s: %v", client, err)
		return req, false
	}
	method := s.chooseMethod(methods)
	if _, err := c.Write([]byte{socksVersion, method}); err != nil {
		return req, false
	}
	if method == methodNone {
		s.logf("proxy: SOCKS client %s: no acceptable authentication method offered (%v)", client, methods)
		return req, false
	}
	if method == methodUserPass {
		user, pass, err := readSOCKSAuth(r)
		if err != nil {
			c.Write([]byte{socksAuthVersion, 1})
			s.logf("proxy: SOCKS client %s: %v", client, err)
			return req, false
		}
		if !s.authorized(user, pass) {
			c.Write([]byte{socksAuthVersion, 1})
			s.logf("proxy: SOCKS client %s: wrong credentials", client)
			return req, false
		}
		if _, err := c.Write([]byte{socksAuthVersion, 0}); err != nil {
			return req, false
		}
	}
	req, err = readSOCKSRequest(r)
	if err != nil {
		var se *socksError
		if errors.As(err, &se) && se.reply != 0 {
			writeSOCKSReply(c, se.reply, nil)
		}
		s.logf("proxy: SOCKS client %s: %v", client, err)
		return req, false
	}
	if req.cmd != cmdConnect {
		writeSOCKSReply(c, repCmdNotSupported, nil)
		s.logf("proxy: SOCKS client %s: command %d for %s not supported (only CONNECT)", client, req.cmd, req.host)
		return req, false
	}
	return req, true
}

// dialReply maps a dial failure to a SOCKS reply code.
func dialReply(err error) byte {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return repConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return repNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), isTimeout(err), errors.As(err, &dnsErr):
		return repHostUnreachable
	}
	return repGeneralFailure
}

// serveSOCKS runs one SOCKS5 client connection: handshake, decision, tunnel.
func (s *Server) serveSOCKS(cc *clientConn) {
	handedOff := false
	defer func() {
		if v := recover(); v != nil {
			s.logf("proxy: internal error serving SOCKS client %s: %v", cc.RemoteAddr(), v)
		}
		if !handedOff {
			cc.Close()
		}
		s.untrack(cc)
	}()
	start := time.Now()
	client := cc.RemoteAddr().String()
	c := cc.Conn
	c.SetDeadline(start.Add(s.lim.HeaderTimeout))
	req, ok := s.socksHandshake(c, client)
	if !ok {
		return
	}
	reply := func(rep byte, bind net.Addr) error { return writeSOCKSReply(c, rep, bind) }

	upstream, res, dialed, err := s.connect(decide.WithRequest(s.baseCtx, "socks5", "", ""), req.host, req.port)
	ev := event("socks5", client, req.host, req.port, res, dialed)
	if !res.Decision.Allow {
		if upstream != nil {
			upstream.Close()
		}
		if res.Decision.Reason == policy.ReasonResolveFailed {
			reply(repHostUnreachable, nil)
		} else {
			reply(repNotAllowed, nil)
		}
		s.record(ev, start)
		return
	}
	if err != nil {
		reply(dialReply(err), nil)
		ev.Reason = audit.ReasonDialFailed
		if isTimeout(err) {
			ev.Reason = audit.ReasonDialTimeout
		}
		ev.Text = fmt.Sprintf("connecting to %s failed: %v", net.JoinHostPort(req.host, fmt.Sprint(req.port)), err)
		s.record(ev, start)
		return
	}
	inspected := s.inspects(req.host, req.port)
	if inspected && s.authority == nil {
		upstream.Close()
		reply(repNotAllowed, nil)
		s.record(inspectUnavailable(ev), start)
		return
	}
	if err := reply(repSucceeded, upstream.LocalAddr()); err != nil {
		upstream.Close()
		ev.Reason, ev.Text = audit.ReasonClientGone, fmt.Sprintf("answering the client failed: %v", err)
		s.record(ev, start)
		return
	}
	handedOff = true
	if inspected {
		s.startInspection(c, cc, upstream, nil, ev, start, s.gate)
		return
	}
	s.startTunnel(c, cc, upstream, nil, ev, start)
}

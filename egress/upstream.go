package egress

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sandgate/sandgate/internal/socks5"
	"github.com/sandgate/sandgate/policy"
)

// UpstreamSend says what the gate asks an upstream proxy to connect to.
type UpstreamSend int

const (
	// SendName sends the checked host name; the upstream resolves it, so
	// sandgate's resolved-address checks do not run for names.
	SendName UpstreamSend = iota
	// SendAddress resolves and checks locally, as without an upstream, and
	// asks the upstream for the checked address.
	SendAddress
)

// ParseUpstreamSend parses "name" (or "") and "address".
func ParseUpstreamSend(s string) (UpstreamSend, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "name":
		return SendName, nil
	case "address":
		return SendAddress, nil
	}
	return SendName, fmt.Errorf("upstream send mode %q: want \"name\" (the upstream resolves) or \"address\" (sandgate resolves and checks, then sends the address)", s)
}

// upstreamHeadMax bounds the CONNECT reply head read from an HTTP upstream.
const upstreamHeadMax = 16 << 10

// Upstream is a proxy that the gate connects through once its policy has
// allowed a target. Its credentials are never part of an error, String or
// an audit event.
type Upstream struct {
	Scheme   string // "http" or "socks5"
	Addr     string // host:port of the upstream proxy
	User     string // empty with no credentials
	Password string
	Send     UpstreamSend
	// NoProxy holds NO_PROXY entries: a matching target is dialled
	// directly, with every local check, as without an upstream.
	NoProxy []string
	// From is the variable UpstreamFromEnv took the URL from (for
	// example "HTTPS_PROXY"); empty for a URL given directly.
	From string
}

// ParseUpstream parses http://[user:pass@]host:port or
// socks5://[user:pass@]host:port (socks5h:// is taken as socks5://). A
// value without a scheme is taken as http://. Errors never repeat the
// credentials.
func ParseUpstream(raw string) (*Upstream, error) {
	const want = "want http://[user:pass@]host:port or socks5://[user:pass@]host:port"
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("upstream proxy URL is empty (" + want + ")")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, credentials included
		}
		return nil, fmt.Errorf("upstream proxy URL is not a URL (%s): %w", want, err)
	}
	up := &Upstream{Scheme: strings.ToLower(u.Scheme)}
	switch up.Scheme {
	case "http":
	case "socks5", "socks5h":
		up.Scheme = "socks5"
	default:
		return nil, fmt.Errorf("upstream proxy scheme %q is not supported (%s)", u.Scheme, want)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream proxy %s://%s: a path, query or fragment is not allowed (%s)", up.Scheme, u.Host, want)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" || port == "" {
		return nil, fmt.Errorf("upstream proxy %s://%s: needs a host and a port (%s)", up.Scheme, u.Host, want)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("upstream proxy %s://%s: port %q is not 1-65535", up.Scheme, u.Host, port)
	}
	up.Addr = net.JoinHostPort(host, port)
	if u.User != nil {
		up.User = u.User.Username()
		up.Password, _ = u.User.Password()
		if up.User == "" {
			return nil, fmt.Errorf("upstream proxy %s: credentials without a user name", up)
		}
	}
	return up, nil
}

// UpstreamFromEnv builds the upstream from a caller's proxy variables
// (getenv is os.Getenv or a test's map): the first set of HTTPS_PROXY,
// ALL_PROXY, HTTP_PROXY (each also in lower case), with NO_PROXY's hosts
// going direct. That one upstream carries every connection the gate makes,
// plain HTTP included; the other variables are not read. Its From names
// the variable. It returns nil and no error when none is set.
func UpstreamFromEnv(getenv func(string) string) (*Upstream, error) {
	var raw, from string
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			raw, from = v, k
			break
		}
	}
	if raw == "" {
		return nil, nil
	}
	up, err := ParseUpstream(raw)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", from, err)
	}
	up.From = from
	np := getenv("NO_PROXY")
	if np == "" {
		np = getenv("no_proxy")
	}
	for _, e := range strings.Split(np, ",") {
		if e = strings.TrimSpace(e); e != "" {
			up.NoProxy = append(up.NoProxy, e)
		}
	}
	return up, nil
}

// String is the upstream's URL without its credentials.
func (u *Upstream) String() string {
	if u == nil {
		return "direct"
	}
	return u.Scheme + "://" + u.Addr
}

// Bypass reports whether host:port matches a NO_PROXY entry: "*" (every
// host), a name (itself and its subdomains; a leading "." or "*." is
// ignored), an IP address or CIDR prefix, each optionally with ":port".
func (u *Upstream) Bypass(host string, port uint16) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	addr, addrErr := netip.ParseAddr(host)
	for _, e := range u.NoProxy {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "*" {
			return true
		}
		if h, p, err := net.SplitHostPort(e); err == nil {
			if p != strconv.Itoa(int(port)) {
				continue
			}
			e = h
		}
		e = strings.TrimSuffix(strings.Trim(e, "[]"), ".")
		if pfx, err := netip.ParsePrefix(e); err == nil {
			if addrErr == nil && pfx.Contains(addr.Unmap()) {
				return true
			}
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			if addrErr == nil && a.Unmap() == addr.Unmap() {
				return true
			}
			continue
		}
		e = strings.TrimPrefix(strings.TrimPrefix(e, "*"), ".")
		if e != "" && (host == e || strings.HasSuffix(host, "."+e)) {
			return true
		}
	}
	return false
}

// dial connects to the upstream with dial and has it connect to
// host:port, bounded by ctx.
func (u *Upstream) dial(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), host string, port uint16) (net.Conn, error) {
	target := net.JoinHostPort(host, strconv.Itoa(int(port)))
	conn, err := dial(ctx, "tcp", u.Addr)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s unreachable: %w", u, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	var out net.Conn
	if u.Scheme == "socks5" {
		out, err = u.socks(conn, host, port)
	} else {
		out, err = u.connect(conn, target)
	}
	if !stop() && err == nil {
		err = fmt.Errorf("upstream proxy %s: CONNECT %s: %w", u, target, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return out, nil
}

// socks runs a SOCKS5 CONNECT to host:port on conn (a name as a domain
// address, a literal as an address).
func (u *Upstream) socks(conn net.Conn, host string, port uint16) (net.Conn, error) {
	var auth *socks5.Auth
	if u.User != "" {
		auth = &socks5.Auth{User: u.User, Password: u.Password}
	}
	if _, err := socks5.Handshake(conn, host, port, auth); err != nil {
		return nil, fmt.Errorf("upstream proxy %s: %w", u, err)
	}
	return conn, nil
}

// connect sends an HTTP CONNECT for target on conn, with Basic proxy
// credentials when the upstream has them, and reads the reply head.
func (u *Upstream) connect(conn net.Conn, target string) (net.Conn, error) {
	var b strings.Builder
	b.WriteString("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n")
	if u.User != "" {
		cred := base64.StdEncoding.EncodeToString([]byte(u.User + ":" + u.Password))
		b.WriteString("Proxy-Authorization: Basic " + cred + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, fmt.Errorf("upstream proxy %s: sending CONNECT %s: %w", u, target, err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	code, reason, err := ReadConnectReply(br)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: CONNECT %s: %w", u, target, err)
	}
	if code/100 != 2 {
		hint := ""
		switch code {
		case 407:
			hint = " (the upstream wants credentials: give them as user:pass@ in the upstream URL, or check them)"
		case 403:
			hint = " (the upstream's own rules refuse this destination)"
		}
		return nil, fmt.Errorf("upstream proxy %s refused CONNECT %s: %d %s%s", u, target, code, reason, hint)
	}
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// ReadConnectReply reads an HTTP/1.x reply head (status line and header
// lines up to the blank line, at most 16 KiB) from an upstream proxy and
// returns its status code and reason phrase (made safe for one line).
// Header values are not kept: nothing in them changes the tunnel.
func ReadConnectReply(r *bufio.Reader) (int, string, error) {
	total := 0
	readLine := func() (string, error) {
		var line []byte
		for {
			frag, err := r.ReadSlice('\n')
			total += len(frag)
			if total > upstreamHeadMax {
				return "", fmt.Errorf("reply head longer than %d bytes", upstreamHeadMax)
			}
			line = append(line, frag...)
			if err == nil {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return "", fmt.Errorf("reading the reply head: %w", err)
			}
		}
		return strings.TrimRight(string(line), "\r\n"), nil
	}
	status, err := readLine()
	if err != nil {
		return 0, "", err
	}
	proto, rest, _ := strings.Cut(status, " ")
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return 0, "", fmt.Errorf("not an HTTP/1.x reply: %q", truncate(status, 64))
	}
	codeText, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil || len(codeText) != 3 || code < 100 {
		return 0, "", fmt.Errorf("bad status code in reply %q", truncate(status, 64))
	}
	for {
		l, err := readLine()
		if err != nil {
			return 0, "", err
		}
		if l == "" {
			break
		}
	}
	return code, oneLine(truncate(strings.TrimSpace(reason), 128)), nil
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// bufferedConn is a connection whose first bytes were read ahead.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

// Read reads the bytes read ahead first, then the connection.
func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connectByName decides host:port by name alone and connects through the
// upstream by name (SendName): the name is checked before anything is sent,
// an IP literal gets every check a literal gets without an upstream, and a
// name is not resolved here.
func (g *Gate) connectByName(ctx context.Context, host string, port uint16) (net.Conn, Result, netip.AddrPort, error) {
	var res Result
	pol, gen := g.Policy, uint64(0)
	if g.Live != nil {
		pol, gen = g.Live.Current()
	}
	t, err := policy.ParseTarget(host, port)
	if err != nil || t.IsIP() || pol == nil {
		// Literals, invalid targets, no policy: the full local decision (a
		// literal needs no lookup).
		res = g.Decide(ctx, host, port)
	} else {
		res = g.decideName(ctx, pol, t, gen)
	}
	if !res.Decision.Allow {
		return nil, res, netip.AddrPort{}, nil
	}
	sendHost := res.Target.Host
	if res.Target.IsIP() {
		sendHost = res.Target.Addr.String()
	}
	dctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	conn, err := g.Upstream.dial(dctx, g.dialer(), sendHost, res.Target.Port)
	if err != nil {
		return nil, res, netip.AddrPort{}, fmt.Errorf("connect to %s: %w", res.Target, err)
	}
	return conn, res, netip.AddrPort{}, nil
}

// dialer is g.Dial or a net.Dialer's.
func (g *Gate) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if g.Dial != nil {
		return g.Dial
	}
	d := &net.Dialer{}
	return d.DialContext
}

// viaUpstream reports whether a connection to host:port goes through the
// upstream.
func (g *Gate) viaUpstream(host string, port uint16) bool {
	return g.Upstream != nil && !g.Upstream.Bypass(host, port)
}

package tlspeek

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Request is what the parser takes from an HTTP/1.x request head.
type Request struct {
	Method string // as sent
	Target string // the request-target as sent
	Proto  string // "HTTP/1.0" or "HTTP/1.1"
	// Host is the host the request names, without a port and without
	// brackets around an IPv6 literal: the authority of an absolute-form
	// or authority-form (CONNECT) target, else the Host header's ("" when
	// the request names none, which HTTP/1.0 allows).
	Host string
	// Port is the port given with Host, or 0 when none was given.
	Port uint16
}

// ReadRequest reads from r until a whole HTTP/1.x request head (the request
// line and the header fields up to the empty line) has arrived, at most max
// bytes (0 means DefaultMax), and returns it with every byte read (also on
// error: they belong to the connection and must be replayed).
func ReadRequest(r io.Reader, max int) (Request, []byte, error) {
	var req Request
	read, err := readUntil(r, max, func(b []byte) error {
		var err error
		req, err = ParseRequest(b)
		return err
	})
	return req, read, err
}

// ParseRequest parses the HTTP/1.x request head at the start of data; the
// body, if any, is ignored. Lines may end in CRLF or a bare LF. It returns
// an error wrapping ErrShort when the head has not ended, ErrNotHTTP when
// the first line cannot be a request line, and ErrMalformed for a malformed
// head: a header field without a name or colon, a folded line, or more than
// one Host field.
func ParseRequest(data []byte) (Request, error) {
	var req Request
	if len(data) == 0 {
		return req, fmt.Errorf("%w: no bytes", ErrShort)
	}
	line, rest, ok := nextLine(data)
	if !ok {
		// The line has not ended; refuse early what cannot become one.
		if i := bytes.IndexByte(data, ' '); (i < 0 && !isToken(data)) || (i >= 0 && !isToken(data[:i])) {
			return req, fmt.Errorf("%w: the first bytes are not a method", ErrNotHTTP)
		}
		return req, fmt.Errorf("%w: request line", ErrShort)
	}
	if err := parseRequestLine(line, &req); err != nil {
		return req, err
	}
	hostField, hosts := "", 0
	for {
		line, rest, ok = nextLine(rest)
		if !ok {
			return req, fmt.Errorf("%w: header fields", ErrShort)
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return req, malformed("a folded header line")
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || !isToken(name) {
			return req, malformed("header line %q", clip(line))
		}
		if strings.EqualFold(string(name), "host") {
			hosts++
			hostField = string(bytes.Trim(value, " \t"))
		}
	}
	if hosts > 1 {
		return req, malformed("%d Host header fields", hosts)
	}
	authority := hostField
	switch {
	case req.Method == "CONNECT":
		authority = req.Target
	case strings.Contains(req.Target, "://"):
		_, after, _ := strings.Cut(req.Target, "://")
		if i := strings.IndexAny(after, "/?#"); i >= 0 {
			after = after[:i]
		}
		authority = after
	}
	if authority == "" {
		return req, nil
	}
	host, port, err := splitAuthority(authority)
	if err != nil {
		return req, err
	}
	req.Host, req.Port = host, port
	return req, nil
}

// parseRequestLine parses "METHOD SP TARGET SP HTTP/1.x" into req.
func parseRequestLine(line []byte, req *Request) error {
	parts := bytes.Split(line, []byte(" "))
	if len(parts) != 3 || !isToken(parts[0]) || len(parts[1]) == 0 {
		return fmt.Errorf("%w: request line %q", ErrNotHTTP, clip(line))
	}
	proto := string(parts[2])
	if proto != "HTTP/1.0" && proto != "HTTP/1.1" {
		return fmt.Errorf("%w: version %q", ErrNotHTTP, clip(parts[2]))
	}
	for _, ch := range parts[1] {
		if ch <= ' ' || ch == 0x7f {
			return malformed("request-target with byte %#02x", ch)
		}
	}
	req.Method, req.Target, req.Proto = string(parts[0]), string(parts[1]), proto
	return nil
}

// splitAuthority splits host[:port] (an IPv6 literal in brackets) and
// refuses userinfo, which has no place in a request's authority.
func splitAuthority(a string) (string, uint16, error) {
	if strings.Contains(a, "@") {
		return "", 0, malformed("an authority with userinfo")
	}
	host, portText := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", 0, malformed("authority %q: '[' without ']'", a)
		}
		host, portText = a[1:end], a[end+1:]
		if portText != "" && portText[0] != ':' {
			return "", 0, malformed("authority %q: bytes after ']'", a)
		}
		portText = strings.TrimPrefix(portText, ":")
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, portText = a[:i], a[i+1:]
		if strings.Contains(host, ":") {
			return "", 0, malformed("authority %q: an IPv6 literal needs brackets", a)
		}
	}
	if host == "" {
		return "", 0, malformed("authority %q names no host", a)
	}
	for i := 0; i < len(host); i++ {
		if ch := host[i]; ch <= ' ' || ch >= 0x7f || strings.IndexByte("/\\?#[]", ch) >= 0 {
			return "", 0, malformed("host %q with byte %#02x", host, ch)
		}
	}
	var port uint16
	if portText != "" {
		p, err := strconv.ParseUint(portText, 10, 16)
		if err != nil || p == 0 {
			return "", 0, malformed("authority %q: bad port", a)
		}
		port = uint16(p)
	}
	return host, port, nil
}

// nextLine returns the first line of b (without its CRLF or LF) and what
// follows it; ok is false when b holds no whole line.
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:], true
}

// isToken reports whether b is a non-empty HTTP token (RFC 9110 tchar).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

// clip shortens b for an error message.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

package proxy

import (
	"bytes"
	"fmt"
	"strings"
)

// requestFramer follows the byte stream of one HTTP client connection
// message by message, as it is read, and stops at the first framing
// ambiguity: anything that lets two parsers disagree about where a request
// or its body ends, which is how requests are smuggled. net/http resolves
// most of these silently (Transfer-Encoding wins over Content-Length, folded
// lines are joined, a bare LF ends a line, HTTP/1.0 ignores
// Transfer-Encoding), so the proxy refuses them before net/http parses them.
//
// Refused: Content-Length together with Transfer-Encoding; Content-Length
// repeated, listed or not a plain decimal number; Transfer-Encoding other
// than exactly "chunked" (one field, one coding), or on an HTTP/1.0 request;
// a body on CONNECT; obsolete line folding; a line ended by a bare LF; a bare
// CR; control characters in a header; a header name that is not a token or
// has white space before its colon; in a chunked body, a chunk size that is
// not 1 to 16 hex digits, a bad chunk extension, and chunk data not followed
// by CRLF. Everything else is left to net/http, which rejects what it cannot
// parse. Scanning stops for good after a CONNECT head (the bytes after it
// belong to the tunnel) and after a head too long for net/http to accept.
//
// The framer keeps only the unfinished line and a few counters, and looks at
// each byte once.
type requestFramer struct {
	maxHead int // a head longer than this is left to net/http's limit

	state    framerState
	off      int64  // bytes fed so far
	line     []byte // the unfinished line
	headAt   int64  // offset where the current head began
	headLen  int
	requests int    // heads begun so far; the current message's number
	reqLine  string // the current message's request line, when read

	// The current head.
	first    bool // the next line is the request line
	connect  bool
	http10   bool
	clCount  int
	cl       int64
	teFields int
	teValue  string

	left int64 // body or chunk bytes still to skip
	crlf int   // bytes of the CRLF after chunk data seen so far

	err *framingError
}

type framerState int

const (
	inHead framerState = iota
	inBody
	inChunkSize
	inChunkData
	inChunkEnd
	inTrailer
	passThrough // after a CONNECT head, or a head net/http will refuse
)

// framingError is the first ambiguity found on a connection.
type framingError struct {
	request int    // the message it is in (1 for the first)
	at      int64  // bytes of the stream that may still be passed on
	reason  string // what was wrong
	head    string // the request line of that message (cut short), when read
	inBody  bool   // in a chunked body (or its trailer), not in a head
}

func (e *framingError) Error() string {
	return "ambiguous request framing (a request smuggling risk): " + e.reason
}

// maxChunkLine bounds a chunk-size line, as net/http does.
const maxChunkLine = 4096

// feed scans p, the next bytes of the stream, and returns how many of them
// may be passed on: all of them unless an ambiguity was found in p, which
// is then in f.err. Nothing is scanned after an ambiguity.
func (f *requestFramer) feed(p []byte) int {
	if f.err != nil {
		return 0
	}
	start := f.off
	for len(p) > 0 && f.err == nil && f.state != passThrough {
		n := f.step(p)
		p = p[n:]
		f.off += int64(n)
	}
	if f.state == passThrough && f.err == nil {
		f.off += int64(len(p))
	}
	if f.err == nil {
		return int(f.off - start)
	}
	f.err.at = min(max(f.err.at, start), f.off)
	return int(f.err.at - start)
}

// step consumes a prefix of p (at least one byte) in the current state.
func (f *requestFramer) step(p []byte) int {
	switch f.state {
	case inBody, inChunkData:
		n := int(min(f.left, int64(len(p))))
		f.left -= int64(n)
		if f.left == 0 {
			if f.state == inBody {
				f.state = inHead
			} else {
				f.state, f.crlf = inChunkEnd, 0
			}
		}
		return n
	case inChunkEnd:
		want := byte('\r')
		if f.crlf == 1 {
			want = '\n'
		}
		if p[0] != want {
			f.fail(f.off, "chunk data not followed by CRLF")
			return 1
		}
		if f.crlf++; f.crlf == 2 {
			f.state = inChunkSize
		}
		return 1
	}
	return f.lineStep(p)
}

// lineStep gathers a line of a head, a chunk-size line or a trailer.
func (f *requestFramer) lineStep(p []byte) int {
	if f.state == inHead && len(f.line) == 0 && f.headLen == 0 {
		f.beginHead()
	}
	i := bytes.IndexByte(p, '\n')
	n := len(p)
	if i >= 0 {
		n = i + 1
	}
	lineAt := f.off - int64(len(f.line))
	switch f.headLen += n; {
	case f.state == inChunkSize && len(f.line)+n > maxChunkLine:
		f.fail(lineAt, "chunk-size line too long")
		return n
	case f.state == inTrailer && f.headLen > f.maxHead:
		f.fail(lineAt, "trailer section too long")
		return n
	case f.state == inHead && f.headLen > f.maxHead:
		f.state = passThrough // longer than net/http accepts: it answers 431
		return n
	}
	f.line = append(f.line, p[:n]...)
	if i < 0 {
		return n
	}
	line := f.line[:len(f.line)-1]
	if len(line) == 0 || line[len(line)-1] != '\r' {
		f.fail(lineAt, "a line ends with a bare LF")
		return n
	}
	line = line[:len(line)-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		f.fail(lineAt, "a bare CR inside a line")
		return n
	}
	switch f.state {
	case inHead:
		f.headLine(line)
	case inChunkSize:
		f.headLen = 0
		f.chunkSizeLine(line, lineAt)
	case inTrailer:
		f.trailerLine(line, lineAt)
	}
	f.line = f.line[:0]
	return n
}

func (f *requestFramer) beginHead() {
	f.requests++
	f.headAt = f.off
	f.first, f.connect, f.http10, f.reqLine = true, false, false, ""
	f.clCount, f.cl, f.teFields, f.teValue = 0, 0, 0, ""
}

// fail records an ambiguity. Of a bad body, what came before the bad line
// may be passed on; of a bad head, its first four bytes (no request fits in
// four bytes): between two requests net/http waits for four bytes and closes
// the connection silently when they do not come, but with them it goes on
// to read the head, fails, and answers 400.
func (f *requestFramer) fail(at int64, reason string) {
	e := &framingError{request: f.requests, at: at, reason: reason, head: f.reqLine, inBody: f.state != inHead}
	if !e.inBody {
		e.at = f.headAt + 4
	}
	f.err = e
}

// headLine handles one line of a request head.
func (f *requestFramer) headLine(line []byte) {
	if f.first {
		if len(line) == 0 && f.headLen <= 2 {
			// An empty line before a request line is tolerated by the
			// RFC; net/http decides what to do with it.
			f.headLen = 0
			f.requests--
			return
		}
		f.first = false
		f.requestLine(line)
		return
	}
	if len(line) == 0 {
		f.endHead()
		return
	}
	if line[0] == ' ' || line[0] == '\t' {
		f.fail(f.headAt, "obsolete line folding in the header")
		return
	}
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(name) == 0 || !isToken(name) {
		f.fail(f.headAt, fmt.Sprintf("malformed header line %q", truncate(line)))
		return
	}
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			f.fail(f.headAt, fmt.Sprintf("a control character in header %s", name))
			return
		}
	}
	v := strings.Trim(string(value), " \t")
	switch {
	case strings.EqualFold(string(name), "Content-Length"):
		f.clCount++
		f.cl = parseDecimal(v)
		if f.cl < 0 {
			f.fail(f.headAt, fmt.Sprintf("Content-Length %q is not a plain decimal number", v))
		}
	case strings.EqualFold(string(name), "Transfer-Encoding"):
		f.teFields++
		f.teValue = v
	}
}

// requestLine records what of the request line decides framing.
func (f *requestFramer) requestLine(line []byte) {
	f.reqLine = truncate(line)
	parts := strings.Split(string(line), " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") || len(parts[2]) != len("HTTP/1.1") {
		f.state = passThrough // not HTTP/1.x as net/http accepts it: it refuses it
		return
	}
	f.connect = parts[0] == "CONNECT"
	f.http10 = parts[2] == "HTTP/1.0"
}

// endHead decides the body's framing at the end of a head.
func (f *requestFramer) endHead() {
	switch {
	case f.clCount > 0 && f.teFields > 0:
		f.fail(f.headAt, "both Content-Length and Transfer-Encoding")
	case f.clCount > 1:
		f.fail(f.headAt, "Content-Length repeated")
	case f.teFields > 1:
		f.fail(f.headAt, "Transfer-Encoding repeated")
	case f.teFields == 1 && f.http10:
		f.fail(f.headAt, "Transfer-Encoding on an HTTP/1.0 request")
	case f.teFields == 1 && !strings.EqualFold(f.teValue, "chunked"):
		f.fail(f.headAt, fmt.Sprintf("Transfer-Encoding %q is not exactly chunked", f.teValue))
	case f.connect && (f.teFields > 0 || f.cl > 0):
		f.fail(f.headAt, "a body on CONNECT")
	}
	if f.err != nil {
		return
	}
	f.headLen = 0
	switch {
	case f.connect:
		f.state = passThrough
	case f.teFields == 1:
		f.state = inChunkSize
	case f.cl > 0:
		f.state, f.left = inBody, f.cl
	}
}

// chunkSizeLine handles "SIZE[;extensions]".
func (f *requestFramer) chunkSizeLine(line []byte, at int64) {
	size, ext, _ := bytes.Cut(line, []byte(";"))
	size = bytes.TrimRight(size, " \t")
	if len(size) == 0 || len(size) > 16 || !isHex(size) {
		f.fail(at, fmt.Sprintf("invalid chunk size %q", truncate(line)))
		return
	}
	for _, c := range ext {
		if (c < ' ' && c != '\t') || c == 0x7f {
			f.fail(at, "a control character in a chunk extension")
			return
		}
	}
	var n int64
	for _, c := range size {
		n = n<<4 | int64(unhex(c))
	}
	if n < 0 || len(size) == 16 && size[0] > '7' {
		f.fail(at, "chunk size too large")
		return
	}
	if n == 0 {
		f.state = inTrailer
		return
	}
	f.state, f.left = inChunkData, n
}

// trailerLine handles a line of the trailer section after the last chunk.
func (f *requestFramer) trailerLine(line []byte, at int64) {
	switch {
	case len(line) == 0:
		f.state, f.headLen = inHead, 0
	case line[0] == ' ' || line[0] == '\t':
		f.fail(at, "obsolete line folding in the trailer")
	case bytes.IndexByte(line, ':') <= 0:
		f.fail(at, fmt.Sprintf("malformed trailer line %q", truncate(line)))
	}
}

// parseDecimal parses 1 to 18 decimal digits, or returns -1.
func parseDecimal(s string) int64 {
	if len(s) == 0 || len(s) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

func isHex(b []byte) bool {
	for _, c := range b {
		if unhex(c) < 0 {
			return false
		}
	}
	return true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// truncate cuts b to at most 200 bytes for messages.
func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

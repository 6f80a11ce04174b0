package proxy

import (
	"bytes"
	"strings"
)

// headScanner follows an upstream's response head(s) as the bytes arrive and
// collects the tokens of their Connection headers (net/http drops a
// response's Connection header when it says "close", and with it the names
// of other hop-by-hop headers that must not be forwarded). 1xx interim heads
// are skipped to the final head.
//
// Each byte is examined a bounded number of times however the head is cut
// into pieces: only the unfinished last line is kept between calls, and a
// piece is searched for line ends from where the previous search stopped.
// Reading a head one byte at a time therefore costs linear, not quadratic,
// work.
type headScanner struct {
	line    []byte // the unfinished line, without its end
	first   bool   // the next line is a status line
	started bool   // first has been set for the current head
	interim bool   // the current head is a 1xx response
	inConn  bool   // the last header line was Connection (for obs-fold)
	done    bool   // the final head has ended
	tokens  []string
	size    int // bytes fed so far, up to the end of the final head

	scanned int // bytes examined, for tests of the work done
}

// maxHeadLine bounds the unfinished line a headScanner keeps; the head as a
// whole is bounded by the transport's MaxResponseHeaderBytes.
const maxHeadLine = maxResponseHeaderBytes

// feed consumes p. It returns true once the final head has ended; later
// bytes (the body) are ignored.
func (h *headScanner) feed(p []byte) bool {
	for len(p) > 0 && !h.done {
		if !h.started {
			h.first, h.started = true, true
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			h.scanned += len(p)
			h.size += len(p)
			if len(h.line)+len(p) <= maxHeadLine {
				h.line = append(h.line, p...)
			}
			return false
		}
		h.scanned += i + 1
		h.size += i + 1
		line := p[:i]
		if len(h.line) > 0 {
			if len(h.line)+len(line) <= maxHeadLine {
				h.line = append(h.line, line...)
			}
			line = h.line
		}
		p = p[i+1:]
		h.endLine(bytes.TrimSuffix(line, []byte("\r")))
		h.line = h.line[:0]
	}
	return h.done
}

// endLine handles one complete line of a head.
func (h *headScanner) endLine(line []byte) {
	switch {
	case len(line) == 0:
		// The end of a head: an interim one is followed by another.
		if !h.interim {
			h.done = true
			h.line = nil
		}
		h.started, h.interim, h.inConn = false, false, false
	case h.first:
		h.first = false
		// "HTTP/1.1 1xx ..." is an interim response.
		if _, rest, ok := bytes.Cut(line, []byte(" ")); ok && len(rest) > 0 && rest[0] == '1' {
			h.interim = true
		}
	case line[0] == ' ' || line[0] == '\t':
		// An obsolete line folding continues the previous header.
		if h.inConn {
			h.addTokens(line)
		}
	default:
		name, value, ok := bytes.Cut(line, []byte(":"))
		h.inConn = ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Connection")
		if h.inConn {
			h.addTokens(value)
		}
	}
}

func (h *headScanner) addTokens(value []byte) {
	for _, tok := range strings.Split(string(value), ",") {
		if tok = strings.TrimSpace(tok); tok != "" {
			h.tokens = append(h.tokens, tok)
		}
	}
}

// parseConnectionTokens reads response heads from b (skipping 1xx interim
// responses) and collects the tokens of their Connection headers. done
// reports whether the final head ended within b.
func parseConnectionTokens(b []byte) (tokens []string, done bool) {
	var h headScanner
	done = h.feed(b)
	return h.tokens, done
}

// Package control is a running sandbox's control socket: the live policy
// of one run (an egress.Live), changed from outside the sandbox by
// `sandgate ctl` or any program that speaks the protocol below.
//
// The protocol (this file) is pure. A client sends one request per line,
// at most MaxLine bytes, ended by "\n" ("\r\n" is accepted):
//
//	allow ENTRY   add ENTRY (an --allow value) to the allow list
//	deny ENTRY    add ENTRY (a --deny value) to the deny list; open
//	              connections it now denies are cut
//	show          the policy in force
//
// and reads one JSON object per line back (Response): "ok", the
// generation "gen" in force after the request, and for show the run's id,
// pid, command and the allow and deny entries. A refused request has
// "ok":false, an "error" in words and a "kind" ("request" for a malformed
// line, "entry" for an entry the policy refuses). A connection may carry
// any number of requests.
//
// The socket (server_linux.go) lives in a directory only the caller can
// reach, is hidden from the sandboxed command's file system view by the
// caller, and accepts only peers whose SO_PEERCRED uid is the caller's (or
// root's); see docs/control.md for why each layer is there.
package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLine bounds one request line, its newline included.
const MaxLine = 4096

// Op is a request's operation.
type Op string

// The operations of the protocol.
const (
	OpAllow Op = "allow" // add an allow entry
	OpDeny  Op = "deny"  // add a deny entry
	OpShow  Op = "show"  // report the policy in force
)

// Request is one parsed request line.
type Request struct {
	Op    Op
	Entry string // the entry of allow and deny; "" for show
}

// String returns the request as its line, without the newline.
func (r Request) String() string {
	if r.Op == OpShow {
		return string(r.Op)
	}
	return string(r.Op) + " " + r.Entry
}

// Kinds of a refused request (Response.Kind).
const (
	KindRequest = "request" // the line is not a request of the protocol
	KindEntry   = "entry"   // the policy refuses the entry
	KindServer  = "server"  // the server could not do what was asked
)

// ParseRequest parses one request line (with or without its "\n" or
// "\r\n"). The entry is the rest of the line after the operation and one or
// more spaces, with surrounding spaces removed; it may contain spaces (a
// rule such as "GET,HEAD example.com/api") but no control characters. The
// entry itself is checked by the policy, not here.
func ParseRequest(line []byte) (Request, error) {
	if len(line) > MaxLine {
		return Request{}, fmt.Errorf("request line of %d bytes is longer than %d", len(line), MaxLine)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if !utf8.Valid(line) {
		return Request{}, errors.New("request line is not UTF-8")
	}
	s := string(line)
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return Request{}, fmt.Errorf("request line has the control character %U", c)
		}
	}
	op, rest, _ := strings.Cut(s, " ")
	rest = strings.Trim(rest, " ")
	switch Op(op) {
	case OpShow:
		if rest != "" {
			return Request{}, fmt.Errorf("show takes nothing, got %q", rest)
		}
		return Request{Op: OpShow}, nil
	case OpAllow, OpDeny:
		if rest == "" {
			return Request{}, fmt.Errorf("%s needs an entry, as in %s example.com:443", op, op)
		}
		return Request{Op: Op(op), Entry: rest}, nil
	case "":
		if s == "" {
			return Request{}, errors.New("empty request: want allow ENTRY, deny ENTRY or show")
		}
		return Request{}, errors.New("request starts with a space: want allow ENTRY, deny ENTRY or show")
	}
	return Request{}, fmt.Errorf("unknown request %q: want allow ENTRY, deny ENTRY or show", truncate(op, 40))
}

// Response is the server's answer to one request, one JSON object per line.
type Response struct {
	OK    bool   `json:"ok"`
	Gen   uint64 `json:"gen"`             // the generation in force after the request
	Error string `json:"error,omitempty"` // why the request was refused
	Kind  string `json:"kind,omitempty"`  // KindRequest, KindEntry or KindServer when refused

	// Filled by show.
	Run     string   `json:"run,omitempty"`     // the run's id
	PID     int      `json:"pid,omitempty"`     // the sandgate process serving the run
	Command []string `json:"command,omitempty"` // the sandboxed command and its arguments
	Allow   []string `json:"allow,omitempty"`   // the allow entries in force
	Deny    []string `json:"deny,omitempty"`    // the deny entries in force
}

// MaxResponse bounds one response line a client reads.
const MaxResponse = 1 << 20

// EncodeResponse returns r as one JSON line, newline included.
func EncodeResponse(r Response) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		// Only strings, numbers and slices of strings: cannot happen.
		b = []byte(`{"ok":false,"error":"encoding the response failed","kind":"server"}`)
	}
	return append(b, '\n')
}

// DecodeResponse parses one response line. A line that is not a single
// JSON object, or that says neither ok nor why not, is an error.
func DecodeResponse(line []byte) (Response, error) {
	if len(line) > MaxResponse {
		return Response{}, fmt.Errorf("response of %d bytes is longer than %d", len(line), MaxResponse)
	}
	line = bytes.TrimSpace(line)
	var r Response
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&r); err != nil {
		return Response{}, fmt.Errorf("malformed response %q: %w", truncate(string(line), 80), err)
	}
	if dec.More() {
		return Response{}, fmt.Errorf("malformed response %q: more than one JSON value", truncate(string(line), 80))
	}
	if !r.OK && r.Error == "" {
		return Response{}, fmt.Errorf("malformed response %q: refused without an error", truncate(string(line), 80))
	}
	return r, nil
}

// truncate shortens s to at most n bytes (on a rune boundary) for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

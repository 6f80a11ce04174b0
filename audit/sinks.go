package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Decision values used in Event.Decision.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// JSONL is a Sink that writes each Event as one JSON object on its own line.
// Writes are serialised, so one JSONL may be shared by many goroutines. Each
// event is flushed as it is recorded, so a crash loses at most the event being
// written.
type JSONL struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closer io.Closer // the file OpenJSONL opened; nil for NewJSONL
	err    error     // first write error, reported by Err and Close
	closed bool
}

// OpenJSONL opens path for appending (creating it with mode 0600 when it does
// not exist) and returns a sink writing to it. Close closes the file.
func OpenJSONL(path string) (*JSONL, error) {
	if path == "" {
		return nil, errors.New("audit: open JSON Lines file: empty path")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open JSON Lines file %q: %w", path, err)
	}
	j := NewJSONL(f)
	j.closer = f
	return j, nil
}

// NewJSONL returns a sink writing to w. Close flushes but does not close w.
func NewJSONL(w io.Writer) *JSONL {
	return &JSONL{w: bufio.NewWriter(w)}
}

// Record writes e as one line. After a write error or Close, events are
// dropped; Err reports the first error.
func (j *JSONL) Record(e Event) {
	line, err := json.Marshal(e)
	if err != nil {
		// Event has only plain fields; this cannot happen, but never panic.
		line = []byte(`{"error":"audit: cannot encode event"}`)
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.err != nil {
		return
	}
	if _, err := j.w.Write(line); err != nil {
		j.err = fmt.Errorf("audit: write event: %w", err)
		return
	}
	if err := j.w.Flush(); err != nil {
		j.err = fmt.Errorf("audit: write event: %w", err)
	}
}

// Err returns the first error met while writing events, or nil.
func (j *JSONL) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Close flushes pending output, closes the file opened by OpenJSONL, and
// returns the first error met while writing or closing. Later calls return
// nil; events recorded after Close are dropped.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	err := j.err
	if ferr := j.w.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("audit: flush events: %w", ferr)
	}
	if j.closer != nil {
		if cerr := j.closer.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("audit: close events file: %w", cerr)
		}
	}
	return err
}

// Refusal is one group of refused connections in a Summary: every refusal of
// the same host, port and reason.
type Refusal struct {
	Host   string // requested host
	Port   uint16 // requested port
	Reason string // policy reason code
	Text   string // human text of the first refusal in the group
	Count  int    // number of refusals in the group
	Proto  string // the Proto of the first refusal in the group ("dns", "packet", "connect", ...)
}

// maxSummaryGroups bounds the memory a Summary uses. Refusals beyond it that
// would open a new group still count in Total but are not listed.
const maxSummaryGroups = 4096

type summaryKey struct {
	host   string
	port   uint16
	reason string
}

// Summary is a Sink that keeps, in memory, a count of refused connections
// grouped by host, port and reason. Allowed events are ignored. It is safe for
// concurrent use. At most 4096 groups are kept; refusals that would open
// another group are counted only in Total.
type Summary struct {
	mu     sync.Mutex
	index  map[summaryKey]int // position in groups
	groups []Refusal          // in order of first appearance
	total  int
	// challenges are the ReasonAuthChallenge events (a 407 to a request
	// that carried no credentials) by host and port that no other event
	// for the same destination has followed yet: a client that comes back
	// with its credentials answers its challenge, which then is no refusal.
	challenges map[summaryKey]*Refusal
	chOrder    []summaryKey
}

// NewSummary returns an empty Summary. The zero Summary is also ready to use.
func NewSummary() *Summary { return &Summary{} }

// Record counts e when it is a refusal (Decision "deny"); a 407 challenge
// (ReasonAuthChallenge) counts only while no other event for its host and
// port has followed it.
func (s *Summary) Record(e Event) {
	if s.challenged(e) || e.Decision != DecisionDeny {
		return
	}
	k := summaryKey{host: e.Host, port: e.Port, reason: e.Reason}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if i, ok := s.index[k]; ok {
		s.groups[i].Count++
		return
	}
	if len(s.groups) >= maxSummaryGroups {
		return
	}
	if s.index == nil {
		s.index = make(map[summaryKey]int)
	}
	s.index[k] = len(s.groups)
	s.groups = append(s.groups, Refusal{Host: e.Host, Port: e.Port, Reason: e.Reason, Text: e.Text, Count: 1, Proto: e.Proto})
}

// Refusals returns a copy of the groups, the most frequent first; groups with
// equal counts stay in the order they were first seen.
func (s *Summary) Refusals() []Refusal {
	s.mu.Lock()
	out := make([]Refusal, len(s.groups), len(s.groups)+len(s.challenges))
	copy(out, s.groups)
	for _, k := range s.chOrder {
		if r, ok := s.challenges[k]; ok {
			out = append(out, *r)
		}
	}
	s.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}

// Total returns the number of refusals recorded, including those not listed
// because the group limit was reached.
func (s *Summary) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.total
	for _, r := range s.challenges {
		n += r.Count
	}
	return n
}

// challenged keeps an unanswered ReasonAuthChallenge event and reports
// true for one; any other event answers the challenges of its host and
// port.
func (s *Summary) challenged(e Event) bool {
	k := summaryKey{host: e.Host, port: e.Port}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Reason != ReasonAuthChallenge {
		if _, ok := s.challenges[k]; ok {
			delete(s.challenges, k)
			s.chOrder = slices.DeleteFunc(s.chOrder, func(o summaryKey) bool { return o == k })
		}
		return false
	}
	if r, ok := s.challenges[k]; ok {
		r.Count++
		return true
	}
	if len(s.challenges) >= maxSummaryGroups {
		return true
	}
	if s.challenges == nil {
		s.challenges = make(map[summaryKey]*Refusal)
	}
	s.challenges[k] = &Refusal{Host: e.Host, Port: e.Port, Reason: e.Reason, Text: e.Text, Count: 1, Proto: e.Proto}
	s.chOrder = append(s.chOrder, k)
	return true
}

type multi []Sink

func (m multi) Record(e Event) {
	for _, s := range m {
		s.Record(e)
	}
}

type discard struct{}

func (discard) Record(Event) {}

// Multi returns a Sink that records every event to each of sinks in order.
// Nil sinks are skipped; with no usable sink the result records nothing.
func Multi(sinks ...Sink) Sink {
	var m multi
	for _, s := range sinks {
		if s == nil || isNilPointer(s) {
			continue
		}
		m = append(m, s)
	}
	switch len(m) {
	case 0:
		return discard{}
	case 1:
		return m[0]
	}
	return m
}

// isNilPointer catches the typed nil pointers of this package's sinks (a nil
// *JSONL or *Summary stored in a Sink interface), which would panic on use.
func isNilPointer(s Sink) bool {
	switch v := s.(type) {
	case *JSONL:
		return v == nil
	case *Summary:
		return v == nil
	}
	return false
}

// summaryListLimit is how many groups FormatSummary names before it says how
// many more there are.
const summaryListLimit = 10

// FormatSummary renders refusals (as returned by Summary.Refusals) as one
// line, for example
//
//	refused 3 connections: evil.test:443 (not on the allow list) ×2, 169.254.169.254:80 (metadata address)
//
// Each kind is counted in its own words: refusals of single requests on an
// inspected host (or in plain HTTP: blocked-by-method, blocked-by-path,
// secret-not-bound, upstream-tls, ...) as requests, names the DNS stub
// refused (port 0) as DNS lookups, and the transparent path's refused
// packets (Proto "packet", whose Text has their number) as packets:
// "refused 2 connections, 1 DNS lookup and 1 request: …". It names at most
// ten groups and says how many more there are. It returns "" when there are
// no refusals.
func FormatSummary(refusals []Refusal) string {
	var conns, requests, lookups int
	packets := false
	for _, r := range refusals {
		if r.Count <= 0 {
			continue
		}
		switch {
		case requestReasons[r.Reason]:
			requests += r.Count
		case r.Proto == ProtoPacket:
			packets = true
		case r.Port == 0:
			lookups += r.Count // a name refused before any port (DNS)
		default:
			conns += r.Count
		}
	}
	var kinds []string
	for _, k := range []struct {
		n     int
		thing string
	}{{conns, "connection"}, {lookups, "DNS lookup"}, {requests, "request"}} {
		if k.n > 0 {
			kinds = append(kinds, plural(k.n, k.thing))
		}
	}
	if packets {
		kinds = append(kinds, "packets")
	}
	if len(kinds) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("refused ")
	b.WriteString(joinAnd(kinds))
	b.WriteString(": ")
	for i, r := range refusals {
		if i == summaryListLimit {
			fmt.Fprintf(&b, ", and %d more", len(refusals)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if r.Port == 0 {
			b.WriteString(r.Host) // a name refused before any port (DNS)
		} else {
			b.WriteString(net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port))))
		}
		b.WriteString(" (")
		b.WriteString(refusalPhrase(r))
		b.WriteString(")")
		if r.Count > 1 {
			b.WriteString(" ×")
			b.WriteString(strconv.Itoa(r.Count))
		}
	}
	return b.String()
}

// requestReasons are the reasons of refusals of one request (on an
// inspected host or in plain HTTP), not of a connection.
var requestReasons = map[string]bool{
	"blocked-by-method": true, "blocked-by-path": true, "secret-not-bound": true,
	"host-mismatch": true, "upstream-tls": true, "bad-path": true,
}

// ProtoPacket is the Proto of the events that count packets the
// transparent path's rules refused (one event per kind, at the end).
const ProtoPacket = "packet"

// joinAnd is "a", "a and b" or "a, b and c".
func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// plural is "1 thing" or "N things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// refusalPhrase is ReasonPhrase for r, saying so when an IP literal is
// what the allow list lacks ("1.1.1.1:80 (IP literal not on the allow
// list)"): the list may well name the host, and a literal is allowed only
// by an IP rule.
func refusalPhrase(r Refusal) string {
	if r.Reason == "not-allowed" {
		if _, err := netip.ParseAddr(r.Host); err == nil {
			return "IP literal " + ReasonPhrase(r.Reason)
		}
	}
	return ReasonPhrase(r.Reason)
}

// Reason codes the proxy uses in events besides the policy's own codes.
const (
	ReasonBadRequest      = "bad-request"      // the request named a target but was malformed
	ReasonAuthFailed      = "auth-failed"      // proxy credentials wrong (or malformed)
	ReasonAuthChallenge   = "auth-challenge"   // proxy credentials asked for (407): the request carried none
	ReasonDialFailed      = "dial-failed"      // allowed, but the connection failed
	ReasonDialTimeout     = "dial-timeout"     // allowed, but the connection timed out
	ReasonUpstream        = "upstream-error"   // allowed, but the exchange with the target failed
	ReasonUpstreamTimeout = "upstream-timeout" // allowed, but the target did not answer (or go on answering) in time
	ReasonClientGone      = "client-gone"      // allowed, but the client left before the connection was made
	ReasonShutdown        = "shutdown"         // allowed, but the proxy was shutting down
	ReasonCutDenied       = "cut-denied"       // allowed, but cut when a live policy change denied it
)

// ReasonPhrase returns a short human phrase for a reason code, such as
// "not on the allow list" for "not-allowed". Unknown codes are returned as
// they are.
func ReasonPhrase(reason string) string {
	switch reason {
	case "not-allowed":
		return "not on the allow list"
	case "denied":
		return "on the deny list"
	case "invalid-host":
		return "invalid host name"
	case "numeric-name":
		return "numeric host name"
	case "no-address":
		return "no usable address"
	case "resolve-failed":
		return "name did not resolve"
	case ReasonBadRequest:
		return "bad request"
	case ReasonAuthFailed:
		return "proxy authentication failed"
	case ReasonAuthChallenge:
		return "the proxy asked for credentials and the client never sent them"
	case ReasonDialFailed:
		return "connection failed"
	case ReasonDialTimeout:
		return "connection timed out"
	case ReasonUpstream:
		return "upstream error"
	case ReasonUpstreamTimeout:
		return "upstream timed out"
	case ReasonClientGone:
		return "client went away"
	case ReasonShutdown:
		return "proxy shutting down"
	case "udp-refused":
		return "UDP other than DNS is not let out, QUIC included"
	case "protocol-refused":
		return "only TCP and DNS are let out"
	case "unknown-synthetic-address":
		return "stale address from sandgate's DNS"
	case "synthetic-range-exhausted":
		return "too many names at once"
	case "dns-type-not-served":
		return "DNS record type not served"
	case "blocked-by-method":
		return "method not allowed by the host's rules"
	case "blocked-by-path":
		return "path not allowed by the host's rules"
	case "secret-not-bound":
		return "a secret's placeholder sent to a host it is not bound to"
	case "sni-mismatch":
		return "TLS server name of another host"
	case "host-mismatch":
		return "request for another host"
	case "inspect-unavailable":
		return "host must be inspected, and this proxy cannot"
	case "upstream-tls":
		return "host's certificate did not verify"
	case "bad-path":
		return "path not in its normal form"
	case "tls-handshake-failed":
		return "TLS handshake with the client failed"
	case "inspect-unknown-protocol":
		return "neither TLS nor HTTP on an inspected host"
	case "decider-denied":
		return "denied by the decider"
	case "decider-failed":
		return "the decider failed or did not answer (a deny)"
	}
	if class, ok := strings.CutPrefix(reason, "address-class:"); ok && class != "" {
		switch class {
		case "local-address":
			return "an address of this host"
		case "denied-address":
			return "denied resolved address"
		case "this-network":
			return "this-network address"
		}
		return class + " address"
	}
	return reason
}

package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func deny(host string, port uint16, reason string) Event {
	return Event{Decision: DecisionDeny, Host: host, Port: port, Reason: reason, Text: host + " refused"}
}

func TestJSONLWritesOneObjectPerLine(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONL(&buf)
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	events := []Event{
		{Time: when, Proto: "http", Client: "127.0.0.1:5000", Host: "a.test", Port: 80, Dialed: "192.0.2.1:80", Decision: DecisionAllow, Reason: "allowed", BytesUp: 10, BytesDown: 20, Duration: 1.5},
		{Time: when, Proto: "socks5", Host: "evil.test", Port: 443, Decision: DecisionDeny, Reason: "not-allowed", Text: "line\nbreak"},
	}
	for _, e := range events {
		j.Record(e)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(events), buf.String())
	}
	for i, line := range lines {
		var got Event
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if got != events[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got, events[i])
		}
	}
	if !strings.Contains(lines[0], `"bytes_up":10`) || !strings.Contains(lines[0], `"duration_ms":1.5`) {
		t.Errorf("field names not as documented: %s", lines[0])
	}
	// Recording after Close drops the event.
	j.Record(events[0])
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Errorf("event recorded after Close: %d lines", n)
	}
}

func TestJSONLConcurrentLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONL(&buf)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				j.Record(Event{Host: strings.Repeat("h", 300), Decision: DecisionAllow})
			}
		}()
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d is not one JSON object: %v", n, err)
		}
		n++
	}
	if n != 400 {
		t.Fatalf("got %d lines, want 400", n)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestJSONLReportsWriteError(t *testing.T) {
	j := NewJSONL(failWriter{})
	j.Record(Event{Host: "a.test"})
	if err := j.Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Err() = %v, want the write error", err)
	}
	if err := j.Close(); err == nil {
		t.Fatal("Close after a write error returned nil")
	}
}

func TestOpenJSONLAppendsAndNamesBadPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	for i := 0; i < 2; i++ {
		j, err := OpenJSONL(path)
		if err != nil {
			t.Fatal(err)
		}
		j.Record(Event{Host: "a.test", Decision: DecisionAllow})
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Fatalf("file has %d lines, want 2 (append):\n%s", n, data)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("audit file mode %v is readable by others", perm)
	}

	bad := filepath.Join(dir, "missing", "audit.jsonl")
	for _, p := range []string{bad, ""} {
		if _, err := OpenJSONL(p); err == nil {
			t.Errorf("OpenJSONL(%q) succeeded", p)
		} else if p != "" && !strings.Contains(err.Error(), bad) {
			t.Errorf("error %q does not name the path", err)
		}
	}
}

func TestSummaryGroupsAndOrders(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		want   []Refusal
		total  int
	}{
		{name: "empty", events: nil, want: []Refusal{}, total: 0},
		{
			name:   "allowed ignored",
			events: []Event{{Decision: DecisionAllow, Host: "a.test", Port: 80, Reason: "allowed"}},
			want:   []Refusal{},
		},
		{
			name: "count desc then first seen",
			events: []Event{
				deny("first.test", 80, "not-allowed"),
				deny("second.test", 443, "denied"),
				deny("second.test", 443, "denied"),
				deny("third.test", 443, "denied"),
				deny("first.test", 81, "not-allowed"),
			},
			want: []Refusal{
				{Host: "second.test", Port: 443, Reason: "denied", Text: "second.test refused", Count: 2},
				{Host: "first.test", Port: 80, Reason: "not-allowed", Text: "first.test refused", Count: 1},
				{Host: "third.test", Port: 443, Reason: "denied", Text: "third.test refused", Count: 1},
				{Host: "first.test", Port: 81, Reason: "not-allowed", Text: "first.test refused", Count: 1},
			},
			total: 5,
		},
		{
			name: "same host different reason",
			events: []Event{
				deny("x.test", 80, "not-allowed"),
				deny("x.test", 80, "address-class:loopback"),
			},
			want: []Refusal{
				{Host: "x.test", Port: 80, Reason: "not-allowed", Text: "x.test refused", Count: 1},
				{Host: "x.test", Port: 80, Reason: "address-class:loopback", Text: "x.test refused", Count: 1},
			},
			total: 2,
		},
		{
			name:   "the proto is kept (a DNS name is counted as a lookup)",
			events: []Event{{Decision: DecisionDeny, Proto: "dns", Host: "n.test", Reason: "not-allowed", Text: "t"}},
			want:   []Refusal{{Host: "n.test", Reason: "not-allowed", Text: "t", Count: 1, Proto: "dns"}},
			total:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Summary
			for _, e := range tt.events {
				s.Record(e)
			}
			got := s.Refusals()
			if len(got) != len(tt.want) {
				t.Fatalf("got %d groups %+v, want %+v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("group %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			if s.Total() != tt.total {
				t.Errorf("Total() = %d, want %d", s.Total(), tt.total)
			}
		})
	}
}

func TestSummaryBoundsGroups(t *testing.T) {
	s := NewSummary()
	for i := 0; i < maxSummaryGroups+10; i++ {
		s.Record(deny("h.test", uint16(i), "not-allowed"))
	}
	s.Record(deny("h.test", 0, "not-allowed"))
	if n := len(s.Refusals()); n != maxSummaryGroups {
		t.Errorf("kept %d groups, want %d", n, maxSummaryGroups)
	}
	if s.Total() != maxSummaryGroups+11 {
		t.Errorf("Total() = %d, want %d", s.Total(), maxSummaryGroups+11)
	}
	if got := s.Refusals()[0]; got.Port != 0 || got.Count != 2 {
		t.Errorf("existing group not counted: %+v", got)
	}
}

type countSink struct {
	mu sync.Mutex
	n  int
}

func (c *countSink) Record(Event) { c.mu.Lock(); c.n++; c.mu.Unlock() }

func TestMulti(t *testing.T) {
	a, b := &countSink{}, &countSink{}
	var nilSummary *Summary
	var nilJSONL *JSONL
	tests := []struct {
		name  string
		sinks []Sink
		want  [2]int
	}{
		{name: "none", sinks: nil},
		{name: "only nils", sinks: []Sink{nil, nilSummary, nilJSONL}},
		{name: "one", sinks: []Sink{a}, want: [2]int{1, 0}},
		{name: "two with nils", sinks: []Sink{nil, a, nilSummary, b}, want: [2]int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.n, b.n = 0, 0
			m := Multi(tt.sinks...)
			if m == nil {
				t.Fatal("Multi returned nil")
			}
			m.Record(Event{Decision: DecisionDeny})
			if got := [2]int{a.n, b.n}; got != tt.want {
				t.Errorf("records = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFormatSummary(t *testing.T) {
	many := make([]Refusal, 12)
	for i := range many {
		many[i] = Refusal{Host: "h.test", Port: uint16(i + 1), Reason: "not-allowed", Count: 1}
	}
	tests := []struct {
		name string
		in   []Refusal
		want string
	}{
		{name: "none", in: nil, want: ""},
		{name: "zero counts", in: []Refusal{{Host: "a.test", Port: 1, Count: 0}}, want: ""},
		{
			name: "example",
			in: []Refusal{
				{Host: "evil.test", Port: 443, Reason: "not-allowed", Count: 2},
				{Host: "169.254.169.254", Port: 80, Reason: "address-class:metadata", Count: 1},
			},
			want: "refused 3 connections: evil.test:443 (not on the allow list) ×2, 169.254.169.254:80 (metadata address)",
		},
		{
			name: "one, IPv6 bracketed",
			in:   []Refusal{{Host: "2001:db8::1", Port: 443, Reason: "denied", Count: 1}},
			want: "refused 1 connection: [2001:db8::1]:443 (on the deny list)",
		},
		{
			name: "IP literals not on the allow list, as the issue's example",
			in: []Refusal{
				{Host: "1.1.1.1", Port: 80, Reason: "not-allowed", Count: 1},
				{Host: "2001:db8::7", Port: 22, Reason: "not-allowed", Count: 1},
				{Host: "1.1.1.1", Port: 53, Reason: "denied", Count: 1},
			},
			want: "refused 3 connections: 1.1.1.1:80 (IP literal not on the allow list), [2001:db8::7]:22 (IP literal not on the allow list), 1.1.1.1:53 (on the deny list)",
		},
		{
			name: "a name refused by DNS, without a port",
			in:   []Refusal{{Host: "evil.test", Port: 0, Reason: "not-allowed", Count: 2, Proto: "dns"}},
			want: "refused 2 DNS lookups: evil.test (not on the allow list) ×2",
		},
		{
			name: "connections, DNS lookups, requests and packets counted apart",
			in: []Refusal{
				{Host: "evil.test", Port: 443, Reason: "not-allowed", Count: 3, Proto: "connect"},
				{Host: "evil.test", Port: 0, Reason: "not-allowed", Count: 2, Proto: "dns"},
				{Host: "api.example.com", Port: 443, Reason: "blocked-by-path", Count: 1, Proto: "connect"},
				{Host: "udp", Port: 0, Reason: "udp-refused", Text: "7 UDP packets ...", Count: 1, Proto: "packet"},
			},
			want: "refused 3 connections, 2 DNS lookups, 1 request and packets: evil.test:443 (not on the allow list) ×3, " +
				"evil.test (not on the allow list) ×2, api.example.com:443 (path not allowed by the host's rules), udp (UDP other than DNS is not let out, QUIC included)",
		},
		{
			name: "packets only",
			in:   []Refusal{{Host: "other", Port: 0, Reason: "protocol-refused", Count: 1, Proto: "packet"}},
			want: "refused packets: other (only TCP and DNS are let out)",
		},
		{
			name: "inspected requests refused, in plain words",
			in: []Refusal{
				{Host: "api.example.com", Port: 443, Reason: "blocked-by-method", Count: 2},
				{Host: "api.example.com", Port: 443, Reason: "upstream-tls", Count: 1},
			},
			want: "refused 3 requests: api.example.com:443 (method not allowed by the host's rules) ×2, api.example.com:443 (host's certificate did not verify)",
		},
		{
			name: "one request",
			in:   []Refusal{{Host: "api.example.com", Port: 443, Reason: "blocked-by-path", Count: 1}},
			want: "refused 1 request: api.example.com:443 (path not allowed by the host's rules)",
		},
		{
			name: "connections and requests",
			in: []Refusal{
				{Host: "evil.test", Port: 443, Reason: "not-allowed", Count: 2},
				{Host: "api.example.com", Port: 443, Reason: "secret-not-bound", Count: 1},
				{Host: "other.test", Port: 443, Reason: "sni-mismatch", Count: 1},
			},
			want: "refused 3 connections and 1 request: evil.test:443 (not on the allow list) ×2, " +
				"api.example.com:443 (a secret's placeholder sent to a host it is not bound to), other.test:443 (TLS server name of another host)",
		},
		{
			name: "unknown reason kept",
			in:   []Refusal{{Host: "a.test", Port: 80, Reason: "something-new", Count: 3}},
			want: "refused 3 connections: a.test:80 (something-new) ×3",
		},
		{
			name: "long list cut",
			in:   many,
			want: "refused 12 connections: " + func() string {
				var parts []string
				for i := 1; i <= 10; i++ {
					parts = append(parts, "h.test:"+strconv.Itoa(i)+" (not on the allow list)")
				}
				return strings.Join(parts, ", ")
			}() + ", and 2 more",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatSummary(tt.in); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestReasonPhrase(t *testing.T) {
	tests := map[string]string{
		"not-allowed":                  "not on the allow list",
		"denied":                       "on the deny list",
		"address-class:loopback":       "loopback address",
		"address-class:metadata":       "metadata address",
		"address-class:":               "address-class:",
		"address-class:local-address":  "an address of this host",
		"address-class:denied-address": "denied resolved address",
		"dial-failed":                  "connection failed",
		"upstream-timeout":             "upstream timed out",
		"blocked-by-method":            "method not allowed by the host's rules",
		"blocked-by-path":              "path not allowed by the host's rules",
		"secret-not-bound":             "a secret's placeholder sent to a host it is not bound to",
		"sni-mismatch":                 "TLS server name of another host",
		"host-mismatch":                "request for another host",
		"inspect-unavailable":          "host must be inspected, and this proxy cannot",
		"upstream-tls":                 "host's certificate did not verify",
		"bad-path":                     "path not in its normal form",
		"tls-handshake-failed":         "TLS handshake with the client failed",
		"inspect-unknown-protocol":     "neither TLS nor HTTP on an inspected host",
		"":                             "",
	}
	for in, want := range tests {
		if got := ReasonPhrase(in); got != want {
			t.Errorf("ReasonPhrase(%q) = %q, want %q", in, got, want)
		}
	}
}

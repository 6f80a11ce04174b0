package main

import (
	"strings"
	"testing"

	"github.com/sandgate/sandgate/audit"
)

// TestRefusalLineCountsKindsApart: the exit summary does not count names
// the DNS stub refused (or the transparent path's refused packets) as
// connections.
func TestRefusalLineCountsKindsApart(t *testing.T) {
	s := audit.NewSummary()
	for _, e := range []audit.Event{
		{Decision: audit.DecisionDeny, Proto: "connect", Host: "evil.test", Port: 443, Reason: "not-allowed"},
		{Decision: audit.DecisionDeny, Proto: "transparent", Host: "evil.test", Port: 443, Reason: "not-allowed"},
		{Decision: audit.DecisionDeny, Proto: "socks5", Host: "other.test", Port: 22, Reason: "not-allowed"},
		{Decision: audit.DecisionDeny, Proto: "dns", Host: "tracker.test", Reason: "not-allowed"},
		{Decision: audit.DecisionDeny, Proto: "dns", Host: "tracker.test", Reason: "not-allowed"},
		{Decision: audit.DecisionDeny, Proto: "packet", Host: "udp", Reason: "udp-refused", Text: "4 UDP packets to non-local addresses were refused"},
	} {
		s.Record(e)
	}
	line := refusalLine(s.Refusals())
	want := "sandgate: refused 3 connections, 2 DNS lookups and packets: evil.test:443 (not on the allow list) ×2, tracker.test (not on the allow list) ×2, "
	if !strings.HasPrefix(line, want) {
		t.Errorf("line %q\nwant it to start with %q", line, want)
	}
	if strings.Contains(line, "5 connections") || strings.Contains(line, "6 connections") {
		t.Errorf("DNS lookups or packets counted as connections: %q", line)
	}
	dnsOnly := refusalLine([]audit.Refusal{{Host: "tracker.test", Reason: "not-allowed", Count: 1, Proto: "dns"}})
	if want := "sandgate: refused 1 DNS lookup: tracker.test (not on the allow list); to allow tracker.test, add --allow tracker.test:PORT"; dnsOnly != want {
		t.Errorf("DNS only: %q\nwant %q", dnsOnly, want)
	}
}

// TestRefusalLineTextOnce: for the refusals whose hint is their own text
// (upstream-tls, secret-not-bound, method/path rules) the exit summary
// shows that text once.
func TestRefusalLineTextOnce(t *testing.T) {
	for _, r := range []audit.Refusal{
		{Host: "api.test", Port: 443, Reason: "upstream-tls", Text: "the certificate of api.test did not verify: signed by an unknown authority", Count: 2},
		{Host: "other.test", Port: 443, Reason: "secret-not-bound", Text: "the placeholder of secret TOKEN is in the header Authorization, and TOKEN is bound to api.test only", Count: 1},
		{Host: "a.test", Port: 443, Reason: "blocked-by-method", Text: "POST /x on a.test:443 is not allowed: a.test is read-only", Count: 1},
	} {
		line := refusalLine([]audit.Refusal{r})
		if n := strings.Count(line, r.Text); n != 1 {
			t.Errorf("%s: the text appears %d times in %q, want once", r.Reason, n, line)
		}
	}
}

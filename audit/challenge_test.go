package audit

import (
	"bytes"
	"testing"
)

// TestSummaryChallenges: a 407 to a request without credentials is a
// refusal only when nothing else for the same host and port follows it
// (the client came back with its credentials, whatever was decided then).
func TestSummaryChallenges(t *testing.T) {
	ch := func(host string, port uint16) Event {
		return Event{Decision: DecisionDeny, Host: host, Port: port, Reason: ReasonAuthChallenge, Text: "asked"}
	}
	allow := func(host string, port uint16) Event {
		return Event{Decision: DecisionAllow, Host: host, Port: port}
	}
	tests := []struct {
		name   string
		events []Event
		want   []Refusal // Host, Port, Reason, Count
	}{
		{"answered by an allow", []Event{ch("git.test", 443), allow("git.test", 443)}, nil},
		{"answered twice over", []Event{ch("git.test", 443), ch("git.test", 443), allow("git.test", 443)}, nil},
		{"answered by a refusal", []Event{ch("evil.test", 443), deny("evil.test", 443, "not-allowed")},
			[]Refusal{{Host: "evil.test", Port: 443, Reason: "not-allowed", Count: 1}}},
		{"never answered", []Event{ch("java.test", 443), ch("java.test", 443), allow("other.test", 443)},
			[]Refusal{{Host: "java.test", Port: 443, Reason: ReasonAuthChallenge, Count: 2}}},
		{"other port", []Event{ch("git.test", 443), allow("git.test", 80)},
			[]Refusal{{Host: "git.test", Port: 443, Reason: ReasonAuthChallenge, Count: 1}}},
		{"challenge again after an answer", []Event{ch("a.test", 1), allow("a.test", 1), ch("a.test", 1)},
			[]Refusal{{Host: "a.test", Port: 1, Reason: ReasonAuthChallenge, Count: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Summary{}
			for _, e := range tt.events {
				s.Record(e)
			}
			got := s.Refusals()
			total := 0
			for _, r := range tt.want {
				total += r.Count
			}
			if len(got) != len(tt.want) || s.Total() != total {
				t.Fatalf("Refusals = %+v (total %d), want %+v (total %d)", got, s.Total(), tt.want, total)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Host != w.Host || g.Port != w.Port || g.Reason != w.Reason || g.Count != w.Count {
					t.Errorf("refusal %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
	if p := ReasonPhrase(ReasonAuthChallenge); p == ReasonAuthChallenge {
		t.Errorf("no phrase for %s", ReasonAuthChallenge)
	}
}

// TestRefusalLogSkipsChallenges: `sandgate proxy` prints no line for a
// 407 challenge (the client may yet answer it), but does for wrong
// credentials.
func TestRefusalLogSkipsChallenges(t *testing.T) {
	var b bytes.Buffer
	l := NewRefusalLog(&b, 10, nil)
	l.Record(Event{Decision: DecisionDeny, Host: "git.test", Port: 443, Reason: ReasonAuthChallenge, Text: "asked"})
	if b.Len() != 0 {
		t.Errorf("a challenge printed %q", b.String())
	}
	l.Record(Event{Decision: DecisionDeny, Host: "git.test", Port: 443, Reason: ReasonAuthFailed, Text: "wrong"})
	if b.Len() == 0 {
		t.Error("wrong credentials printed nothing")
	}
}

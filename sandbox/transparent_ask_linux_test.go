//go:build linux

package sandbox

import (
	"context"
	"testing"

	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// TestTransparentStubPolicyAsks checks the DNS stub's answer when the run
// asks (--ask, --decider): a name merely not on the allow list gets an
// address, so that the connection is asked about; a denied name never does;
// a live change is seen.
func TestTransparentStubPolicyAsks(t *testing.T) {
	pol, err := policy.New(policy.Config{Allow: []string{"allowed.example"}, Deny: []string{"denied.example"}})
	if err != nil {
		t.Fatal(err)
	}
	never := decide.Func(func(context.Context, decide.Question) (decide.Answer, error) {
		t.Error("the stub asked the decider")
		return decide.Answer{}, nil
	})
	cases := []struct {
		name   string
		ask    bool
		host   string
		ok     bool
		reason string
	}{
		{"no asker, allowed", false, "allowed.example", true, ""},
		{"no asker, not listed", false, "other.example", false, policy.ReasonNotAllowed},
		{"asker, not listed", true, "other.example", true, ""},
		{"asker, denied", true, "denied.example", false, policy.ReasonDenied},
		{"asker, numeric", true, "127.1", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := &egress.Gate{Policy: pol}
			if c.ask {
				g.Live = egress.NewLive(pol)
				g.Ask = &egress.Asker{Decider: never}
			}
			tr := &transparentRun{spec: Spec{Gate: g}}
			ok, reason := tr.policy().Allowed(c.host)
			if ok != c.ok || (c.reason != "" && reason != c.reason) || (!ok && reason == "") {
				t.Fatalf("Allowed(%q) = %v, %q; want %v, %q", c.host, ok, reason, c.ok, c.reason)
			}
		})
	}
	live := egress.NewLive(pol)
	tr := &transparentRun{spec: Spec{Gate: &egress.Gate{Policy: pol, Live: live}}}
	if ok, _ := tr.policy().Allowed("late.example"); ok {
		t.Fatal("late.example allowed before the live change")
	}
	if _, err := live.Allow("late.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tr.policy().Allowed("late.example"); !ok {
		t.Fatal("the stub does not see the live policy")
	}
}

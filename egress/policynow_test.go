package egress

import (
	"testing"

	"github.com/sandgate/sandgate/policy"
)

func TestGatePolicyNow(t *testing.T) {
	static, err := policy.New(policy.Config{Allow: []string{"static.test"}})
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{Policy: static}
	if g.PolicyNow() != static {
		t.Errorf("without Live, PolicyNow is not Policy")
	}
	g.Live = NewLive(static)
	if _, err := g.Live.Allow("later.test"); err != nil {
		t.Fatal(err)
	}
	if !g.PolicyNow().CheckName("later.test").Allow {
		t.Errorf("PolicyNow does not follow the Live policy")
	}
	if g.Policy.CheckName("later.test").Allow {
		t.Errorf("the Live change reached the static Policy")
	}
	if (&Gate{}).PolicyNow() != nil {
		t.Errorf("an empty gate has a policy")
	}
}

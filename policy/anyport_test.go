package policy

import "testing"

func TestCheckName(t *testing.T) {
	p, err := New(Config{
		Allow: []string{"api.example.com:443", "**.open.test", "db.example.com:5432", "mixed.test:80", "mixed.test:443"},
		Deny:  []string{"secret.open.test", "db.example.com:5432", "mixed.test:80"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		allow  bool
		reason string
	}{
		{"api.example.com", true, ReasonAllowed},
		{"x.open.test", true, ReasonAllowed},
		{"open.test", true, ReasonAllowed},
		{"secret.open.test", false, ReasonDenied},
		{"db.example.com", false, ReasonDenied}, // its only allowed port is denied
		{"mixed.test", true, ReasonAllowed},     // 443 is still allowed
		{"other.test", false, ReasonNotAllowed},
		{"UPPER.test", false, ReasonInvalidHost},
		{"1.2.3.4", false, ReasonNumericName},
	} {
		d := p.CheckName(c.name)
		if d.Allow != c.allow || d.Reason != c.reason || d.Text == "" {
			t.Errorf("CheckName(%q) = %+v, want allow %v reason %s", c.name, d, c.allow, c.reason)
		}
	}
	var none *Policy
	if d := none.CheckName("a.test"); d.Allow {
		t.Errorf("a nil policy allowed %+v", d)
	}
}

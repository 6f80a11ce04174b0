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

// FuzzCheckName: a name is allowed on some port exactly when CheckTarget
// allows it on one of the ports the policy's entries name (or any other,
// for an entry without a port), and a name not in normalised form never is.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"x.a.test", "z.a.test", "a.test", "b.test", "y.c.test", "w.c.test", "c.test", "B.test", "1.2.3.4", "", "a..test"} {
		f.Add(s)
	}
	p, err := New(Config{
		Allow: []string{"**.a.test:443", "b.test", "*.c.test:22", "d.test:80"},
		Deny:  []string{"x.a.test", "b.test:80", "y.c.test:22", "d.test"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := p.CheckName(s)
		if d.Text == "" || d.Reason == "" {
			t.Fatalf("CheckName(%q) = %+v: no reason or text", s, d)
		}
		if n, err := NormalizeName(s); err != nil || n != s {
			if d.Allow {
				t.Fatalf("CheckName(%q) allowed a name not in normalised form", s)
			}
			return
		}
		some := false
		for _, port := range []uint16{1, 22, 80, 443} {
			some = some || p.CheckTarget(Target{Host: s, Port: port}).Allow
		}
		if d.Allow != some {
			t.Fatalf("CheckName(%q) = %+v, but CheckTarget allows it on some port: %v", s, d, some)
		}
	})
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox"
)

func TestDecideFlagsUsageErrors(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	old := askTerminalPath
	askTerminalPath = "/nonexistent/sandgate-test-tty"
	t.Cleanup(func() { askTerminalPath = old })
	cases := []struct {
		args []string
		want []string // substrings of stderr
	}{
		{[]string{"run", "--decider", "http://203.0.113.9:8700/", "--", "true"}, []string{"--decider", "203.0.113.9", "loopback"}},
		{[]string{"run", "--decider", "unix:rel.sock", "--", "true"}, []string{"--decider", "absolute path"}},
		{[]string{"run", "--decider", "https://127.0.0.1:1/", "--", "true"}, []string{"--decider", `scheme "https"`}},
		{[]string{"run", "--ask", "--decider", "unix:/run/d.sock", "--", "true"}, []string{"--ask and --decider cannot be used together"}},
		{[]string{"run", "--ask", "--", "true"}, []string{"--ask needs a terminal", "/nonexistent/sandgate-test-tty", "--decider URL", "--allow"}},
		{[]string{"run", "--network", "none", "--decider", "unix:/run/d.sock", "--", "true"}, []string{"need --network proxy"}},
		{[]string{"run", "--decider", "unix:/run/d.sock", "--decider-timeout", "-1s", "--", "true"}, []string{"must not be negative"}},
		{[]string{"proxy", "--http", "127.0.0.1:0", "--socks", "", "--decider", "http://[2001:db8::1]:1/"}, []string{"--decider", "loopback"}},
		{[]string{"proxy", "--http", "127.0.0.1:0", "--socks", "", "--ask", "--decider", "unix:/d"}, []string{"cannot be used together"}},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, c.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %q", c.args, code, exitUsage, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q does not say %q", c.args, stderr, w)
			}
		}
	}
}

func TestDecideFlagsApply(t *testing.T) {
	pol, err := policy.New(policy.Config{Allow: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	// No decider: the gate is left alone.
	spec := sandbox.Spec{Network: sandbox.NetworkProxy, Gate: &egress.Gate{Policy: pol}}
	var none decideFlags
	if err := none.apply(&spec, nil, fixedID("")); err != nil || spec.Gate.Live != nil || spec.Gate.Ask != nil || spec.Audit != nil {
		t.Fatalf("no decider: %v, gate %+v", err, spec.Gate)
	}
	d := decideFlags{url: "unix:/run/d.sock", timeout: time.Second}
	if err := d.apply(&spec, nil, fixedID("run-x")); err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if spec.Gate.Live == nil || spec.Gate.Ask == nil || spec.Gate.Ask.Run != "run-x" || spec.Audit == nil {
		t.Fatalf("gate %+v, audit %v", spec.Gate, spec.Audit)
	}
	if p, gen := spec.Gate.Live.Current(); p != pol || gen != 0 {
		t.Fatalf("the live policy starts from %p gen %d, want the loaded policy", p, gen)
	}
	// An existing live policy is kept; a random run id is made when none is given.
	live := egress.NewLive(pol)
	g := &egress.Gate{Policy: pol, Live: live}
	if err := d.applyGate(g, ""); err != nil || g.Live != live || len(g.Ask.Run) != 12 {
		t.Fatalf("applyGate: %v, live kept %v, run %q", err, g.Live == live, g.Ask.Run)
	}
}

func TestDeciderFailuresRateLimited(t *testing.T) {
	now := time.Unix(1000, 0)
	var out bytes.Buffer
	f := newDeciderFailures(&out, 2, func() time.Time { return now })
	ev := audit.Event{Proto: "connect", Host: "a.example", Port: 443, Decision: "deny",
		Reason: egress.ReasonDeciderFailed, Text: "a.example:443 is refused: the decider did not answer within 10s"}
	f.Record(audit.Event{Decision: "deny", Reason: egress.ReasonDeciderDenied, Host: "b.example"}) // not a failure
	f.Record(audit.Event{Decision: "allow", Host: "c.example"})
	for i := 0; i < 5; i++ {
		f.Record(ev)
	}
	now = now.Add(1500 * time.Millisecond)
	ev.Text = "evil\x1b[2J.example:443 is refused: the decider answered HTTP 500"
	f.Record(ev)
	f.Flush()
	want := "sandgate: a.example:443 is refused: the decider did not answer within 10s (decider-failed: a decider that fails denies)\n" +
		"sandgate: a.example:443 is refused: the decider did not answer within 10s (decider-failed: a decider that fails denies)\n" +
		"sandgate: … 3 more decider failures not shown (at most 2 lines a second; --audit FILE records every one)\n" +
		`sandgate: evil\x1b[2J.example:443 is refused: the decider answered HTTP 500 (decider-failed: a decider that fails denies)` + "\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestReasonPhrasesOfDecider(t *testing.T) {
	for reason, want := range map[string]string{
		egress.ReasonDeciderDenied: "denied by the decider",
		egress.ReasonDeciderFailed: "the decider failed or did not answer (a deny)",
	} {
		if got := audit.ReasonPhrase(reason); got != want {
			t.Errorf("ReasonPhrase(%q) = %q, want %q", reason, got, want)
		}
	}
}

func fixedID(id string) func() (string, error) {
	return func() (string, error) { return id, nil }
}

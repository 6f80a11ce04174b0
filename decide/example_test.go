package decide

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExampleDecider runs the example decider of docs/decider.md with
// python3 and asks it through Client, so that the documented example works.
func TestExampleDecider(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed; the example decider in docs/decider.md needs it")
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "decider.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- example-decider -->\n```python\n")
	code, _, ok2 := strings.Cut(rest, "```\n<!-- /example-decider -->")
	if !ok || !ok2 {
		t.Fatal("docs/decider.md has no example between <!-- example-decider --> markers")
	}
	if n := strings.Count(code, "\n"); n > 40 {
		t.Errorf("the example has %d lines; keep it short", n)
	}
	script := filepath.Join(t.TempDir(), "decider.py")
	if err := os.WriteFile(script, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, "0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		t.Fatalf("the example printed %q (%v); stderr %s", line, err, stderr.String())
	}
	c, err := NewClient("http://127.0.0.1:"+port+"/", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host string
		want Answer
	}{
		{"www.example.com", Answer{Allow: true, Scope: ScopeRun}},
		{"api.example.net", Answer{Allow: true, Scope: ScopeOnce}},
		{"example.org", Answer{}},
	}
	for _, k := range cases {
		q := Question{Run: "r1", Protocol: "connect", Host: k.host, Port: 443}
		if got, err := c.Decide(context.Background(), q); err != nil || got != k.want {
			t.Errorf("%s: %+v, %v; want %+v (stderr %s)", k.host, got, err, k.want, stderr.String())
		}
	}
	q := Question{Run: "r1", Protocol: "http", Host: "a.example.com", Port: 80, Method: "GET", Path: "/x"}
	if got, err := c.Decide(context.Background(), q); err != nil || !got.Allow {
		t.Errorf("with method and path: %+v, %v", got, err)
	}
}

package doctor

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportVerdictAndText(t *testing.T) {
	r := Report{OS: "linux", Checks: []Check{
		{Name: "a", OK: true, Required: true, Detail: "fine"},
		{Name: "b", OK: false, Required: false, Detail: "optional missing"},
		{Name: "c", OK: false, Required: true, Detail: "broken", Fix: "do x"},
	}}
	if r.OK() {
		t.Fatal("a failed required check must make the report fail")
	}
	if f := r.Failures(); len(f) != 1 || f[0].Name != "c" {
		t.Fatalf("failures %v", f)
	}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{"FAIL  c", "note  b", "ok    a", "c: broken; fix: do x", "1 of the checks"} {
		if !strings.Contains(s, want) {
			t.Errorf("text lacks %q:\n%s", want, s)
		}
	}
	b.Reset()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK     bool    `json:"ok"`
		Checks []Check `json:"checks"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil || got.OK || len(got.Checks) != 3 {
		t.Fatalf("json %s (%v)", b.String(), err)
	}
	r.Checks = r.Checks[:2]
	if !r.OK() {
		t.Fatal("only an optional check failed: the report holds")
	}
}

func TestJudge(t *testing.T) {
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.jsonl")
	os.WriteFile(audit, []byte(`{"host":"127.0.0.1","port":8080,"decision":"allow"}`+"\n"), 0o600)
	paths := proofPaths{outside: filepath.Join(dir, "outside"), hook: filepath.Join(dir, "hook"), audit: audit}
	failed := func(cs []Check) map[string]bool {
		m := map[string]bool{}
		for _, c := range cs {
			if !c.OK {
				m[c.Name] = true
			}
		}
		return m
	}
	good := ProbeResult{DirectUDP: "sent", Errno: "read-only file system", HookErrno: "read-only file system"}
	if f := failed(judge(good, 0, paths, "127.0.0.1:8080")); len(f) != 0 {
		t.Fatalf("a clean probe failed %v", f)
	}
	bad := ProbeResult{DirectTCP: "reached x directly", Proxied: "refused", Hook: "created"}
	os.WriteFile(paths.outside, nil, 0o600)
	f := failed(judge(bad, 2, paths, "127.0.0.1:9090"))
	for _, name := range []string{"direct TCP refused", "direct UDP refused", "proxied request works",
		"proxied request audited", "write outside workspace held", "git hook write refused"} {
		if !f[name] {
			t.Errorf("%q should fail for %+v", name, bad)
		}
	}
}

func TestProbeArgsRole(t *testing.T) {
	if _, ok := ProbeMain([]string{"sandgate", "run"}); ok {
		t.Fatal("an ordinary invocation is not the probe")
	}
	if code, ok := ProbeMain([]string{"sandgate", ProbeRole, "{not json"}); !ok || code != 2 {
		t.Fatalf("bad probe arguments: code %d ok %v", code, ok)
	}
}

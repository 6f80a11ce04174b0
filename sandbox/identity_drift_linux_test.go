//go:build linux

package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandgate/sandgate/nftfw"
)

func (w *idWorld) testDrift(t *testing.T) {
	_, lineAddr, _ := servers(t)
	run := func(alb bool) outcome {
		t.Helper()
		spec := w.spec("id-net", "direct="+lineAddr)
		spec.AllowLocalBinding = alb
		return sandboxRun(t, spec)
	}
	oneLine := func(o outcome, want string) {
		t.Helper()
		t.Logf("messages: %q", o.notes)
		if o.err != nil || len(o.notes) != 1 || !strings.HasPrefix(o.notes[0], "reconciled the identity setup: ") ||
			strings.Contains(o.notes[0], "\n") || !strings.Contains(o.notes[0], want) || o.stderr != "" {
			t.Errorf("reconcile: err %v, messages %q, stderr %q (want one message with %q, nothing on CMD's stderr)", o.err, o.notes, o.stderr, want)
		}
	}
	before := w.reconciles
	o := run(true)
	oneLine(o, "allow_local_binding changed from false to true")
	mustContain(t, o.stdout, "direct "+lineAddr+" ok\n") // the rules now open loopback
	o = run(true)
	if o.stderr != "" || len(o.notes) != 0 || w.reconciles != before+1 {
		t.Errorf("a current setup was reconciled again: %q %q", o.stderr, o.notes)
	}
	o = run(false)
	oneLine(o, "allow_local_binding changed from true to false")
	mustContain(t, o.stdout, "direct "+lineAddr+" ECONNREFUSED\n")

	// The rules are gone (as after a reboot) but the marker says installed.
	if err := nftfw.Remove(""); err != nil {
		t.Fatal(err)
	}
	o = run(false)
	oneLine(o, "the firewall rules were missing, as after a reboot")
	mustContain(t, o.stdout, "direct "+lineAddr+" ECONNREFUSED\n")

	// A run that needs the other mode while runs rely on this one: refused.
	gatePath, open := w.gate()
	_, wait := background(t, w.spec("id-wait", gatePath))
	time.Sleep(200 * time.Millisecond) // let it take its share of the rules
	count := filepath.Join(w.gates, "count-"+randHex(4))
	spec := w.spec("id-count", count)
	spec.AllowLocalBinding = true
	o = runNoCheck(spec)
	open()
	wait()
	if !errors.Is(o.err, ErrUnavailable) || !strings.Contains(o.err.Error(), "other identity runs are using the installed rules") {
		t.Errorf("switching the rules under a running sandbox: %v", o.err)
	}
	if _, err := os.Stat(count); err == nil {
		t.Error("CMD ran")
	}

	// A reconcile that fails: exit 125 with the command.
	w.failReconcile = errors.New("test failure")
	defer func() { w.failReconcile = nil }()
	spec = w.spec("id-count", count)
	spec.AllowLocalBinding = true
	o = runNoCheck(spec)
	if !errors.Is(o.err, ErrUnavailable) || !strings.Contains(o.err.Error(), "run `sandgate setup --allow-local-binding`") {
		t.Errorf("failed reconcile: %v", o.err)
	}
}

func (w *idWorld) testNonRoot(t *testing.T) {
	cfg, _ := json.Marshal(w.helperConfig())
	cmd := execCommand(w.bin)
	cmd.Dir = w.base
	cmd.Env = append(os.Environ(), helperEnv+"=id-nonroot", idConfigEnv+"="+string(cfg), "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mustContain(t, string(out), "unavailable true\n", "allow_local_binding changed from false to true",
		"run `sudo sandgate setup --allow-local-binding` to reconcile it", "identity runs need root")
}

func (w *idWorld) testAuto(t *testing.T) {
	count := filepath.Join(w.work, "count")
	cfg := w.helperConfig()
	cfg.Dir, cfg.Bin, cfg.Count = w.work, w.bin, count
	auto := func(cfg idHelperConfig) string {
		raw, _ := json.Marshal(cfg)
		cmd := execCommand(w.bin)
		cmd.Env = append(os.Environ(), helperEnv+"=id-auto", idConfigEnv+"="+string(raw), "GORACE=atexit_sleep_ms=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out)
	}
	out := auto(cfg)
	mustContain(t, out, "exit 0\n", "error <nil>\n")
	b, err := os.ReadFile(count)
	if err != nil || string(b) != fmt.Sprintf("ran as %d\n", w.offUID) {
		t.Errorf("CMD under auto with user namespaces refused: %q %v (want one run as the offline user)\n%s", b, err, out)
	}
	os.Remove(count)

	// Not set up either: 125, explaining both.
	cfg.StateDir = filepath.Join(w.base, "no-such-setup")
	out = auto(cfg)
	mustContain(t, out, "unavailable true\n", "no backend can run here: the netns backend: cannot create the sandbox's namespaces",
		"the identity backend: the identity backend is not set up")
	if _, err := os.Stat(count); err == nil {
		t.Error("CMD ran")
	}
}

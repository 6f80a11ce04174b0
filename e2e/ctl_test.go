//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ctlScript is CMD of TestCtlLivePolicy (bash, for /dev/tcp). $1 is the
// runtime directory holding the control sockets, $2 the probe. It checks
// that the control directory is hidden, retries an HTTP request through
// the proxy until a `sandgate ctl allow` lets it through, then holds two
// tunnels to remote.test:22 open (a CONNECT through the proxy and a
// transparent connection) until a `sandgate ctl deny` cuts them, and waits
// for a line on stdin before it ends.
const ctlScript = `
rt=$1 probe=$2
if [ -n "$(ls -A "$rt/sandgate" 2>/dev/null)" ]; then echo CONTROL-VISIBLE; fi
echo WAITING
i=0
until "$probe" http http://remote.test/ >/dev/null 2>&1; do
	i=$((i+1)); [ $i -gt 400 ] && { echo NEVER-ALLOWED; exit 3; }
	sleep 0.1
done
echo ALLOWED-OK
hp=${HTTPS_PROXY#http://}; hp=${hp%/}
exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" || exit 4
printf 'CONNECT remote.test:22 HTTP/1.1\r\nHost: remote.test:22\r\n\r\n' >&3
read -r status <&3
while read -r line <&3; do [ "${line%$'\r'}" = "" ] && break; done
read -r banner <&3
echo "CONNECT-TUNNEL ${status%$'\r'} ${banner%$'\r'}"
exec 4<>/dev/tcp/remote.test/22 || exit 5
read -r banner4 <&4
echo "TRANSPARENT-TUNNEL ${banner4%$'\r'}"
echo TUNNELS-OPEN
cat <&3 >/dev/null; echo CONNECT-CUT
cat <&4 >/dev/null; echo TRANSPARENT-CUT
read -r _
echo BYE
`

// ctlAuditEvent is the part of an audit record the control test reads.
type ctlAuditEvent struct {
	Proto    string `json:"proto"`
	Host     string `json:"host"`
	Port     uint16 `json:"port"`
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	Gen      uint64 `json:"gen"`
}

// TestCtlLivePolicy runs a sandbox with a control socket (netns backend)
// and changes its policy with `sandgate ctl` while CMD runs: an allow lets
// CMD's retried request through, a deny cuts its open tunnels, show prints
// the generation, and another uid cannot reach the socket.
func TestCtlLivePolicy(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	rt, err := os.MkdirTemp(binDir, "rt-") // outside /tmp, so that the view has to hide it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rt) })
	home := newHome(t, nil)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	env := []string{"XDG_RUNTIME_DIR=" + rt}
	const run = "e2e-ctl"

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	c := w.hostCmd(ctx, nil, home, sandgateArgv([]string{"--backend", "netns", "--control-id", run, "--audit", auditPath,
		"--allow", "other.test"}, "bash", "-c", ctlScript, "bash", rt, probeBin)...)
	c.Env = append(c.Env, env...)
	stdout, stderr := newLines(), newLines()
	c.Stdout, c.Stderr = stdout, stderr
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := c.Wait()
		stdout.end()
		stderr.end()
		done <- err
	}()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		t.Logf("sandgate run\n  stdout: %s\n  stderr: %s", indent(stdout.String()), indent(stderr.String()))
	})
	ctl := func(u *testUser, args ...string) outcome {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		uhome := home
		if u != nil {
			uhome = newHome(t, u)
		}
		cmd := w.hostCmd(cctx, u, uhome, append([]string{sandgateBin, "ctl"}, args...)...)
		cmd.Env = append(cmd.Env, env...)
		return finish(t, cmd)
	}

	stderr.waitFor(t, "sandgate: run "+run+": change its policy with sandgate ctl "+run, 30*time.Second)
	stdout.waitFor(t, "WAITING", 30*time.Second)
	waitAudit(t, auditPath, func(e ctlAuditEvent) bool {
		return e.Host == "remote.test" && e.Port == 80 && e.Reason == "not-allowed"
	})

	if o := ctl(nil, run, "allow", "remote.test"); o.code != 0 || !strings.Contains(o.stdout, "allow remote.test: in force at generation 1") {
		t.Fatalf("ctl allow: exit %d, %q", o.code, o.stdout)
	}
	stdout.waitFor(t, "ALLOWED-OK", 30*time.Second)
	stdout.waitFor(t, "TUNNELS-OPEN", 30*time.Second)
	for _, want := range []string{"CONNECT-TUNNEL HTTP/1.1 200", "SSH-2.0-sgtest-banner", "TRANSPARENT-TUNNEL SSH-2.0-sgtest-banner"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("CMD's output lacks %q", want)
		}
	}
	if strings.Contains(stdout.String(), "CONTROL-VISIBLE") {
		t.Errorf("CMD sees the control socket directory")
	}
	if o := ctl(nil, run, "show"); o.code != 0 || !strings.Contains(o.stdout, "generation 1\nallow: other.test remote.test\ndeny: (none)") {
		t.Errorf("ctl show: exit %d, %q", o.code, o.stdout)
	}
	if o := ctl(nil, "list"); o.code != 0 || !strings.HasPrefix(o.stdout, run+"\tpid ") || !strings.Contains(o.stdout, "\tgen 1\tbash -c") {
		t.Errorf("ctl list: exit %d, %q", o.code, o.stdout)
	}
	if o := ctl(nil, "no-such-run", "show"); o.code != 2 || !strings.Contains(o.stderr, "running: "+run) {
		t.Errorf("ctl of an unknown run: exit %d, %q", o.code, o.stderr)
	}
	if o := ctl(nil, run, "deny", "remote.test:22"); o.code != 0 || !strings.Contains(o.stdout, "generation 2") {
		t.Fatalf("ctl deny: exit %d, %q", o.code, o.stdout)
	}
	stdout.waitFor(t, "CONNECT-CUT", 10*time.Second)
	stdout.waitFor(t, "TRANSPARENT-CUT", 10*time.Second)
	if o := ctl(nil, run, "deny", "http://remote.test/"); o.code != 2 || !strings.Contains(o.stderr, "is a URL") {
		t.Errorf("ctl deny of a URL: exit %d, %q", o.code, o.stderr)
	}
	if o := ctl(nil, run, "show"); o.code != 0 || !strings.Contains(o.stdout, "generation 2\n") || !strings.Contains(o.stdout, "deny: remote.test:22") {
		t.Errorf("ctl show after the deny: exit %d, %q", o.code, o.stdout)
	}

	// Another uid: the directory (0700) keeps it from the socket.
	u := createUser(t)
	if o := ctl(u, run, "allow", "evil.test"); o.code != 125 || !strings.Contains(o.stderr, "permission denied (only the user who started a run, and root, may control it)") {
		t.Errorf("ctl as uid %d: exit %d, %q; want 125 and permission denied", u.uid, o.code, o.stderr)
	}
	if o := ctl(u, "list"); o.code == 0 {
		t.Errorf("ctl list as uid %d succeeded: %q", u.uid, o.stdout)
	}
	if o := ctl(nil, run, "show"); !strings.Contains(o.stdout, "generation 2\n") || strings.Contains(o.stdout, "evil.test") {
		t.Errorf("the other uid changed the policy: %q", o.stdout)
	}

	fmt.Fprintln(stdin, "end")
	select {
	case err := <-done:
		if code := exitCode(t, err); code != 0 {
			t.Errorf("sandgate run exit %d, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end")
	}
	stdout.waitFor(t, "BYE", time.Second)

	evs := readCtlAudit(t, auditPath, true)
	cut := 0
	for _, e := range evs {
		if e.Reason == "cut-denied" {
			cut++
			if e.Host != "remote.test" || e.Port != 22 || e.Gen != 2 {
				t.Errorf("cut event %+v: want remote.test:22 at generation 2", e)
			}
		}
	}
	if cut != 2 {
		t.Errorf("%d cut-denied events, want 2 (CONNECT and transparent): %+v", cut, evs)
	}
	var updates []string
	allowedAt1 := false
	for _, e := range evs {
		if e.Proto == "control" {
			updates = append(updates, fmt.Sprintf("%s %s %s %d", e.Decision, e.Reason, e.Host, e.Gen))
		}
		if e.Host == "remote.test" && e.Port == 80 && e.Decision == "allow" && e.Gen == 1 {
			allowedAt1 = true
		}
	}
	if want := "update allow-added remote.test 1,update deny-added remote.test:22 2"; strings.Join(updates, ",") != want {
		t.Errorf("control events %q, want %q", updates, want)
	}
	if !allowedAt1 {
		t.Errorf("no allowed remote.test:80 request at generation 1: %+v", evs)
	}
	if strings.Contains(stderr.String(), "refused: ") && strings.Contains(stderr.String(), "allow-added") {
		t.Errorf("the exit summary counts policy updates: %q", stderr.String())
	}
	// The socket is gone with the run.
	if o := ctl(nil, "list"); o.code != 0 || o.stdout != "" {
		t.Errorf("ctl list after the run: exit %d, %q", o.code, o.stdout)
	}
}

// readCtlAudit parses the audit file at path; while the run goes on
// (strict false) a line being written is skipped.
func readCtlAudit(t *testing.T, path string, strict bool) []ctlAuditEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("audit file: %v", err)
	}
	defer f.Close()
	var evs []ctlAuditEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e ctlAuditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if strict {
				t.Fatalf("audit line %q: %v", sc.Text(), err)
			}
			continue
		}
		evs = append(evs, e)
	}
	return evs
}

// waitAudit waits (up to 30 s) for an event that matches in the audit file.
func waitAudit(t *testing.T, path string, match func(ctlAuditEvent) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			for _, e := range readCtlAudit(t, path, false) {
				if match(e) {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no matching audit event in %s", path)
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/control"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox"
)

// controlRuntime points the control socket directory at a fresh one.
func controlRuntime(t *testing.T) string {
	t.Helper()
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	return filepath.Join(rt, "sandgate")
}

// ctlOutcome runs sandgate ctl ARGS in process.
func ctlOutcome(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	err := runCtl(&out, &errw, args, false)
	var ee *exitError
	switch {
	case err == nil:
		return 0, out.String(), errw.String()
	case errors.As(err, &ee):
		if ee.err != nil {
			errw.WriteString(ee.err.Error())
		}
		return ee.code, out.String(), errw.String()
	}
	t.Fatalf("runCtl(%q): %v", args, err)
	return 0, "", ""
}

func TestCtlCommand(t *testing.T) {
	dir := controlRuntime(t)
	pol, err := policy.New(policy.Config{Allow: []string{"first.test"}})
	if err != nil {
		t.Fatal(err)
	}
	live := egress.NewLive(pol)
	srv, err := control.Listen(control.Options{Dir: dir, Run: "job", Live: live, Command: []string{"make", "test"}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })

	cases := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"job", "allow", "second.test:443"}, 0, "allow second.test:443: in force at generation 1", ""},
		{[]string{"job", "deny", "first.test"}, 0, "deny first.test: in force at generation 2", ""},
		{[]string{"job", "show"}, 0, "generation 2\nallow: first.test second.test:443\ndeny: first.test", ""},
		{[]string{"list"}, 0, "job\tpid ", ""},
		{[]string{"job", "allow", "http://x.test/"}, 2, "", "invalid allow entry"},
		{[]string{"job", "allow", "a.test", "b.test"}, 2, "", "allow takes one entry"},
		{[]string{"job", "allow"}, 2, "", "allow takes one entry"},
		{[]string{"job", "reload"}, 2, "", `unknown action "reload"`},
		{[]string{"job"}, 2, "", "usage: sandgate ctl"},
		{nil, 2, "", "usage: sandgate ctl"},
		{[]string{"job", "show", "x"}, 2, "", "show takes nothing more"},
		{[]string{"nosuch", "show"}, 2, "", `no running sandbox has the run id "nosuch"; running: job`},
		{[]string{"../job", "show"}, 2, "", `run id "../job"`},
		{[]string{"a b", "show"}, 2, "", "only letters, digits"},
		{[]string{"job", "allow", "a\x01b"}, 2, "", "control character"},
	}
	for _, c := range cases {
		code, out, errs := ctlOutcome(t, c.args...)
		if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errs, c.err) {
			t.Errorf("ctl %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", c.args, code, out, errs, c.code, c.out, c.err)
		}
	}
	if _, gen := live.Current(); gen != 2 {
		t.Errorf("the run is at generation %d, want 2", gen)
	}

	var out bytes.Buffer
	if err := runCtl(&out, &out, []string{"list"}, true); err != nil {
		t.Fatal(err)
	}
	var shows []control.Response
	if err := json.Unmarshal(out.Bytes(), &shows); err != nil || len(shows) != 1 || shows[0].Run != "job" || shows[0].Gen != 2 ||
		strings.Join(shows[0].Command, " ") != "make test" {
		t.Errorf("ctl list --json = %s (%v)", out.String(), err)
	}

	srv.Close()
	if code, out, errs := ctlOutcome(t, "list"); code != 0 || out != "" || !strings.Contains(errs, "no run with a control socket is running") {
		t.Errorf("ctl list with no run: exit %d, %q, %q", code, out, errs)
	}
	code, _, errs := ctlOutcome(t, "job", "show")
	if code != 2 || !strings.Contains(errs, "none has a control socket") {
		t.Errorf("ctl show after the run ended: exit %d, %q", code, errs)
	}
}

func TestControlFlagsStart(t *testing.T) {
	dir := controlRuntime(t)
	pol, err := policy.New(policy.Config{Allow: []string{"first.test"}})
	if err != nil {
		t.Fatal(err)
	}
	newSpec := func() *sandbox.Spec {
		return &sandbox.Spec{Args: []string{"true"}, Network: sandbox.NetworkProxy, Gate: &egress.Gate{Policy: pol},
			View: &fsview.Profile{Mode: fsview.ModeWorkspace}}
	}

	// Off: nothing changes.
	spec := newSpec()
	stop, err := (&controlFlags{}).start(spec, nil)
	if err != nil || spec.Gate.Live != nil || len(spec.View.Hide) != 0 {
		t.Fatalf("start without --control: %v, %+v", err, spec)
	}
	stop()

	spec = newSpec()
	stop, err = (&controlFlags{id: "named"}).start(spec, nil)
	if err != nil {
		t.Fatalf("start --control-id named: %v", err)
	}
	if spec.Gate.Live == nil {
		t.Fatalf("no live policy")
	}
	if p, _ := spec.Gate.Live.Current(); p != pol {
		t.Errorf("the live policy does not start from the run's")
	}
	if strings.Join(spec.View.Hide, ",") != dir {
		t.Errorf("hidden %q, want the control directory %s", spec.View.Hide, dir)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("control directory %v, %v: want mode 0700", fi, err)
	}
	if _, err := (&controlFlags{id: "named"}).start(newSpec(), nil); !isExit(err, exitUsage) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second run named named: %v", err)
	}
	stop()
	if ids, _ := control.List(dir); len(ids) != 0 {
		t.Errorf("runs %v after stop", ids)
	}

	// A live policy set already (a decider's) is the one controlled, and
	// the random id chosen beforehand is the socket's.
	spec = newSpec()
	own := egress.NewLive(pol)
	spec.Gate.Live = own
	cf := &controlFlags{on: true}
	id, err := cf.runID()
	if again, _ := cf.runID(); err != nil || control.CheckRunID(id) != nil || again != id {
		t.Fatalf("runID = %q, %v, then %q", id, err, again)
	}
	stop, err = cf.start(spec, nil)
	if err != nil || spec.Gate.Live != own {
		t.Errorf("start with a live policy already: %v, replaced: %v", err, spec.Gate.Live != own)
	}
	if ids, _ := control.List(dir); strings.Join(ids, ",") != id {
		t.Errorf("runs %v, want [%s]", ids, id)
	}
	if stop != nil {
		stop()
	}
	if id, _ := (&controlFlags{id: "given"}).runID(); id != "given" {
		t.Errorf("runID with --control-id given = %q", id)
	}

	refused := []struct {
		name string
		c    controlFlags
		edit func(*sandbox.Spec)
		code int
		want string
	}{
		{"bad id", controlFlags{id: "a/b"}, nil, exitUsage, "--control-id"},
		{"network none", controlFlags{on: true}, func(s *sandbox.Spec) { s.Network = sandbox.NetworkNone }, exitUsage, "--network none has no proxy"},
		{"all unix sockets, no view", controlFlags{on: true}, func(s *sandbox.Spec) {
			s.AllowUnixSockets = true
			s.View = &fsview.Profile{Mode: fsview.ModeHost}
		}, exitUsage, "--allow-unix-sockets and --fs host"},
		{"the socket itself", controlFlags{on: true}, func(s *sandbox.Spec) {
			s.UnixSockets = []string{filepath.Join(dir, "other.sock")}
		}, exitUsage, "is a control socket"},
	}
	for _, r := range refused {
		spec := newSpec()
		if r.edit != nil {
			r.edit(spec)
		}
		c := r.c
		stop, err := c.start(spec, nil)
		if err == nil {
			stop()
		}
		if !isExit(err, r.code) || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: %v; want exit %d with %q", r.name, err, r.code, r.want)
		}
	}

	// A directory others may enter fails the run (exit 125), never runs
	// it without the control asked for.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if _, err := (&controlFlags{on: true}).start(newSpec(), nil); !isExit(err, exitFailure) || !strings.Contains(err.Error(), "mode 0755") {
		t.Errorf("an open control directory: %v", err)
	}
}

func isExit(err error, code int) bool {
	var ee *exitError
	return errors.As(err, &ee) && ee.code == code
}

func TestCommandLine(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"make", "test"}, "make test"},
		{[]string{"sh", "-c", "echo a\nb"}, `sh -c "echo a\nb"`},
		{[]string{"x", ""}, `x ""`},
		{[]string{"it's"}, `"it's"`},
	}
	for _, c := range cases {
		if got := commandLine(c.args); got != c.want {
			t.Errorf("commandLine(%q) = %q, want %q", c.args, got, c.want)
		}
	}
	if got := shortLine("abcdef", 4); got != "abc…" {
		t.Errorf("shortLine = %q", got)
	}
	if got := shortLine("abc", 4); got != "abc" {
		t.Errorf("shortLine = %q", got)
	}
}

//go:build linux

package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/setup"
)

// TestExitCodes: the run's status is CMD's, 128+N for signal N, 127 for a
// command not found and 126 for one that cannot be executed.
func TestExitCodes(t *testing.T) {
	// Captured output (the run ends once the init is reaped) and files
	// (the run ends on the init's report of CMD's end) with the proxy.
	for _, v := range []struct {
		name    string
		run     func(*testing.T, Spec) outcome
		network Network
	}{{"captured", sandboxRun, NetworkNone}, {"files", sandboxRunFiles, NetworkProxy}} {
		t.Run(v.name, func(t *testing.T) {
			checkExitCodes(t, v.run, Spec{Network: v.network, Gate: denyAllGate(), Transparent: v.network == NetworkProxy})
		})
	}
}

// checkExitCodes runs each case of TestExitCodes with spec (and Args) by run.
func checkExitCodes(t *testing.T, run func(*testing.T, Spec) outcome, spec Spec) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badInterp := filepath.Join(dir, "bad-interpreter")
	if err := os.WriteFile(badInterp, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		note string // substring expected in sandgate's message (none when "")
	}{
		{"true", []string{"true"}, 0, ""},
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3, ""},
		{"SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15, ""},
		{"SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9, ""},
		{"not found", []string{"sandgate-no-such-command-xyz"}, 127, "sandgate-no-such-command-xyz: command not found"},
		{"missing path", []string{filepath.Join(dir, "missing")}, 127, "missing: no such file"},
		{"not executable", []string{notExec}, 126, "not-executable"},
		{"directory", []string{dir}, 126, filepath.Base(dir)},
		{"bad interpreter", []string{badInterp}, 126, "bad-interpreter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec.Args = tt.args
			o := run(t, spec)
			if o.err != nil {
				t.Fatalf("Run: %v", o.err)
			}
			if o.res.ExitCode != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", o.res.ExitCode, tt.code, o.stderr)
			}
			switch {
			case tt.note == "" && len(o.notes) != 0:
				t.Errorf("unexpected messages %q", o.notes)
			case tt.note != "" && (len(o.notes) != 1 || !strings.Contains(o.notes[0], tt.note)):
				t.Errorf("messages %q, want one mentioning %q", o.notes, tt.note)
			}
			if strings.Contains(o.stderr, "sandgate:") {
				t.Errorf("sandgate wrote to CMD's stderr: %q", o.stderr)
			}
		})
	}
}

func TestStdioPassThrough(t *testing.T) {
	o := sandboxRun(t, Spec{Args: []string{"sh", "-c", "cat; echo to-stderr >&2"}, Network: NetworkNone, Stdin: strings.NewReader("from stdin\n")})
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v", o.res, o.err)
	}
	if o.stdout != "from stdin\n" || o.stderr != "to-stderr\n" {
		t.Errorf("stdout %q stderr %q", o.stdout, o.stderr)
	}
}

func TestWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	spec := helperSpec("pwd")
	spec.Network, spec.Dir = NetworkNone, dir
	o := sandboxRun(t, spec)
	if o.err != nil || strings.TrimSpace(o.stdout) != dir {
		t.Fatalf("pwd %q err %v", o.stdout, o.err)
	}
	spec.Dir = filepath.Join(dir, "missing")
	o = sandboxRun(t, spec)
	if o.err == nil || !strings.Contains(o.err.Error(), "working directory") || errors.Is(o.err, ErrUnavailable) {
		t.Fatalf("missing Dir: err %v, result %+v", o.err, o.res)
	}
}

func TestSpecErrors(t *testing.T) {
	ctx := context.Background()
	nowhere := &setup.Leaser{Options: setup.Options{StateDir: t.TempDir()}}
	_, err := Run(ctx, Spec{Args: []string{"true"}, Network: NetworkNone, Backend: BackendIdentity, leaser: nowhere})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "identity backend is not set up") || !strings.Contains(err.Error(), "sandgate setup`") {
		t.Errorf("identity backend: %v", err)
	}
	if _, err := Run(ctx, Spec{Args: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "Gate") {
		t.Errorf("NetworkProxy without a Gate: %v", err)
	}
	if _, err := Run(ctx, Spec{Network: NetworkNone}); err == nil {
		t.Error("no command: no error")
	}
	if _, err := Run(ctx, Spec{Args: []string{"true"}, Network: NetworkNone, Executable: "/nonexistent/sandgate"}); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("missing executable: %v", err)
	}
}

//go:build linux

package initproc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLookPath finds commands the way a shell does and names the exit
// code of each failure: 126 for a file that is there but not executable,
// 127 for nothing found.
func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"tool": 0o755, "plain": 0o644} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=/nonexistent:" + bin, "PATH=" + bin} // the last PATH counts
	for _, c := range []struct {
		file, dir string
		env       []string
		want      string
		code      int
	}{
		{"tool", "", env, filepath.Join(bin, "tool"), 0},
		{"./x/y", "", env, "./x/y", 0}, // with a slash: execve decides
		{"plain", "", env, "", 126},
		{"absent", "", env, "", 127},
		{"", "", env, "", 127},
		{"tool", dir, []string{"PATH=bin"}, "./bin/tool", 0}, // relative to CMD's directory
		{"sh", "", nil, "/usr/bin/sh", 0},                    // no PATH: the default one
	} {
		got, err := lookPath(c.file, c.env, c.dir)
		var ee *execError
		switch {
		case c.code != 0:
			if !errors.As(err, &ee) || ee.code != c.code {
				t.Errorf("lookPath(%q) = %q, %v; want exit code %d", c.file, got, err, c.code)
			}
		case c.want == "/usr/bin/sh":
			if err != nil || (got != "/usr/bin/sh" && got != "/bin/sh") {
				t.Errorf("lookPath(sh) without PATH = %q, %v", got, err)
			}
		case err != nil || got != c.want:
			t.Errorf("lookPath(%q, dir %q) = %q, %v; want %q", c.file, c.dir, got, err, c.want)
		}
	}
}

func TestExecFailure(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/nonexistent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		err  error
		code int
		msg  string
	}{
		{filepath.Join(dir, "missing"), syscall.ENOENT, 127, "no such file or directory"},
		{script, syscall.ENOENT, 126, "bad interpreter or missing loader"},
		{dir, syscall.EACCES, 126, "permission denied"},
		{script, errors.New("odd"), 126, "odd"},
	} {
		var ee *execError
		if err := execFailure("cmd", c.path, "", c.err); !errors.As(err, &ee) || ee.code != c.code || !strings.Contains(ee.msg, c.msg) {
			t.Errorf("execFailure(%s, %v) = %v, want %d %q", c.path, c.err, err, c.code, c.msg)
		}
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"/home/u":     "/home/u",
		"/a b":        "'/a b'",
		"/it's":       `'/it'\''s'`,
		"":            "''",
		"/x/$HOME/*?": "'/x/$HOME/*?'",
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}

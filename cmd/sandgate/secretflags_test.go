package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/sandgate/sandgate/config"
	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/sandbox"
)

const testToken = "ghp_R3alT0kenValue0123456789abcdefABCD"

// secretTestSpec is a proxy-mode spec with a workspace view rooted in a
// fresh temporary directory (its workspace) and one --write root.
func secretTestSpec(t *testing.T) (*sandbox.Spec, string) {
	t.Helper()
	dir := t.TempDir()
	ws, wr, outside := filepath.Join(dir, "ws"), filepath.Join(dir, "wr"), filepath.Join(dir, "keys")
	for _, d := range []string{ws, wr, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	spec := &sandbox.Spec{Network: sandbox.NetworkProxy, Args: []string{"sh", "-c", "true"},
		Env:  []string{"PATH=/usr/bin", "GITHUB_TOKEN=" + testToken, "GH_COPY=x" + testToken + "y"},
		View: &fsview.Profile{Mode: fsview.ModeWorkspace, Workspace: ws, Write: []string{wr}}}
	return spec, dir
}

func parseSecretFlags(t *testing.T, args ...string) *secretFlags {
	t.Helper()
	var s secretFlags
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	s.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestSecretApplyEnv(t *testing.T) {
	spec, _ := secretTestSpec(t)
	s := parseSecretFlags(t, "--secret", "GITHUB_TOKEN=api.github.com,github.com")
	if err := s.apply(&config.File{}, spec, []string{"GITHUB_TOKEN=" + testToken}); err != nil {
		t.Fatal(err)
	}
	var ph string
	for _, kv := range spec.Env {
		if strings.Contains(kv, testToken) {
			t.Errorf("CMD's environment holds the real value: %q", kv)
		}
		if v, ok := strings.CutPrefix(kv, "GITHUB_TOKEN="); ok {
			if ph != "" {
				t.Error("GITHUB_TOKEN is in the environment twice")
			}
			ph = v
		}
	}
	if len(ph) != len(testToken) || !strings.HasPrefix(ph, "ghp_") {
		t.Fatalf("GITHUB_TOKEN placeholder %q does not have the token's shape", ph)
	}
	if !slices.Contains(spec.Env, "GH_COPY=x"+ph+"y") || !slices.Contains(spec.Env, "PATH=/usr/bin") {
		t.Errorf("other variables: %q", spec.Env)
	}
	if s.set == nil || !s.set.Binds("api.github.com", 443) || s.set.Binds("gist.github.com", 443) {
		t.Error("the set was not kept, or binds the wrong hosts")
	}
}

func TestSecretApplyFile(t *testing.T) {
	spec, dir := secretTestSpec(t)
	file := filepath.Join(dir, "keys", "npm")
	if err := os.WriteFile(file, []byte("npm_0123456789abcdefghijABCDEFGHIJ012345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "keys", "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	s := parseSecretFlags(t, "--secret", "NPM_TOKEN@"+link+"=registry.npmjs.org")
	if err := s.apply(&config.File{}, spec, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(spec.View.Hide, file) {
		t.Errorf("the value file %s is not hidden from CMD: Hide = %q", file, spec.View.Hide)
	}
	if !slices.ContainsFunc(spec.Env, func(kv string) bool { return strings.HasPrefix(kv, "NPM_TOKEN=npm_") }) {
		t.Errorf("no NPM_TOKEN placeholder in %q", spec.Env)
	}
}

func TestSecretApplyErrors(t *testing.T) {
	tests := []struct {
		name   string
		flags  func(dir string) []string
		cf     *config.File
		modify func(spec *sandbox.Spec, dir string)
		env    []string
		want   string
	}{
		{name: "missing variable", flags: func(string) []string { return []string{"--secret", "GITHUB_TOKEN=github.com"} },
			want: "no variable GITHUB_TOKEN in sandgate's environment"},
		{name: "empty variable", flags: func(string) []string { return []string{"--secret", "GITHUB_TOKEN=github.com"} },
			env: []string{"GITHUB_TOKEN="}, want: "is empty"},
		{name: "bad pattern", flags: func(string) []string { return []string{"--secret", "GITHUB_TOKEN=*.com"} },
			want: "public suffix"},
		{name: "bad flag", flags: func(string) []string { return []string{"--secret", "GITHUB_TOKEN"} },
			want: "invalid --secret"},
		{name: "file in the workspace", flags: func(dir string) []string {
			return []string{"--secret", "T@" + filepath.Join(dir, "ws", "tok") + "=github.com"}
		}, want: "inside"},
		{name: "file in a write root", flags: func(dir string) []string {
			return []string{"--secret", "T@" + filepath.Join(dir, "wr", "tok") + "=github.com"}
		}, want: "which CMD can write"},
		{name: "symlink into the workspace", flags: func(dir string) []string {
			return []string{"--secret", "T@" + filepath.Join(dir, "keys", "ln") + "=github.com"}
		}, want: "which CMD can write"},
		{name: "missing file", flags: func(dir string) []string {
			return []string{"--secret", "T@" + filepath.Join(dir, "keys", "none") + "=github.com"}
		}, want: "no such file"},
		{name: "not a regular file", flags: func(dir string) []string {
			return []string{"--secret", "T@" + filepath.Join(dir, "keys") + "=github.com"}
		}, want: "not a regular file"},
		{name: "too large", flags: func(dir string) []string {
			return []string{"--secret", "T@" + filepath.Join(dir, "keys", "big") + "=github.com"}
		}, want: "larger than 64 KiB"},
		{name: "fs host", flags: func(dir string) []string {
			return []string{"--secret", "T@" + filepath.Join(dir, "keys", "tok") + "=github.com"}
		}, modify: func(spec *sandbox.Spec, _ string) { spec.View = &fsview.Profile{Mode: fsview.ModeHost} }, want: "--fs host"},
		{name: "network none", flags: func(string) []string { return []string{"--secret", "GITHUB_TOKEN=github.com"} },
			env: []string{"GITHUB_TOKEN=" + testToken}, modify: func(spec *sandbox.Spec, _ string) { spec.Network = sandbox.NetworkNone },
			want: "needs --network proxy"},
		{name: "value in the arguments", flags: func(string) []string { return []string{"--secret", "GITHUB_TOKEN=github.com"} },
			env: []string{"GITHUB_TOKEN=" + testToken}, modify: func(spec *sandbox.Spec, _ string) {
				spec.Args = []string{"curl", "-H", "Authorization: Bearer " + testToken}
			}, want: "argument 2"},
		{name: "config entry without variable", cf: &config.File{Secrets: map[string]config.Secret{"CFG": {Hosts: []string{"a.example.com"}}}},
			flags: func(string) []string { return nil }, want: "no variable CFG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, dir := secretTestSpec(t)
			for _, f := range []string{filepath.Join(dir, "ws", "tok"), filepath.Join(dir, "wr", "tok"), filepath.Join(dir, "keys", "tok")} {
				if err := os.WriteFile(f, []byte(testToken), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(filepath.Join(dir, "ws", "tok"), filepath.Join(dir, "keys", "ln")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "keys", "big"), make([]byte, maxSecretFile+1), 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.modify != nil {
				tt.modify(spec, dir)
			}
			cf := tt.cf
			if cf == nil {
				cf = &config.File{}
			}
			before := slices.Clone(spec.Env)
			err := parseSecretFlags(t, tt.flags(dir)...).apply(cf, spec, tt.env)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("apply error %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !slices.Equal(spec.Env, before) {
				t.Errorf("a failed apply changed the environment")
			}
		})
	}
}

func TestSecretSpecsMerge(t *testing.T) {
	cf := &config.File{Secrets: map[string]config.Secret{
		"A": {Hosts: []string{"a.example.com"}},
		"B": {Hosts: []string{"b.example.com"}, File: "/etc/b"},
	}}
	s := parseSecretFlags(t, "--secret", "B=c.example.com", "--secret", "C@rel/file=d.example.com")
	specs, err := s.specs(cf)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sp := range specs {
		got = append(got, sp.String())
	}
	wd, _ := os.Getwd()
	want := []string{"A=a.example.com", "B=c.example.com", "C@" + filepath.Join(wd, "rel/file") + "=d.example.com"}
	if !slices.Equal(got, want) {
		t.Errorf("specs = %q, want %q", got, want)
	}
	names := s.names(cf)
	slices.Sort(names)
	if !slices.Equal(names, []string{"A", "B", "B", "C"}) {
		t.Errorf("names = %q", names)
	}
	none := parseSecretFlags(t)
	spec := &sandbox.Spec{Network: sandbox.NetworkNone}
	if err := none.apply(&config.File{}, spec, nil); err != nil || none.set != nil {
		t.Errorf("no secrets: %v, set %v", err, none.set)
	}
}

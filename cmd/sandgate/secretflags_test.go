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
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox"
	"github.com/sandgate/sandgate/secrets"
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

// TestUnreachableSecretHosts: a secret bound only to hosts the policy
// refuses is an error naming the secret, the host, why and the fix (a
// note when the policy can grow while the run goes on, or when another of
// its hosts is allowed); wildcard patterns are not judged.
func TestUnreachableSecretHosts(t *testing.T) {
	tests := []struct {
		name     string
		allow    []string
		deny     []string
		readOnly []string
		hosts    string
		dynamic  bool
		wantErr  string
		wantNote string
	}{
		{name: "allowed", allow: []string{"api.example.com"}, hosts: "api.example.com"},
		{name: "allowed by wildcard", allow: []string{"*.example.com"}, hosts: "api.example.com"},
		{name: "read-only", readOnly: []string{"api.example.com/repos/**"}, hosts: "api.example.com"},
		{name: "not allowed", allow: []string{"github.com"}, hosts: "api.example.com",
			wantErr: "secret GITHUB_TOKEN is bound to api.example.com, which the policy does not allow (api.example.com is not on the allow list): no request could ever carry its value; allow it (--allow api.example.com, or --read-only api.example.com), or bind the secret to a host the policy allows"},
		{name: "other port", allow: []string{"api.example.com:8443"}, hosts: "api.example.com:443",
			wantErr: "bound to api.example.com:443, which the policy does not allow"},
		{name: "address", allow: []string{"github.com"}, hosts: "203.0.113.10",
			wantErr: "bound to 203.0.113.10, which the policy does not allow (203.0.113.10:443 is not on the allow list)"},
		{name: "denied", allow: []string{"**.example.com"}, deny: []string{"api.example.com"}, hosts: "api.example.com",
			wantErr: "a deny entry wins over every allow entry: drop it"},
		{name: "dynamic", allow: []string{"github.com"}, hosts: "api.example.com", dynamic: true,
			wantNote: "secret GITHUB_TOKEN is bound to api.example.com, which the policy does not allow now (api.example.com is not on the allow list); requests there are refused unless it is allowed"},
		{name: "one of two", allow: []string{"github.com"}, hosts: "api.example.com,github.com",
			wantNote: "bound to api.example.com, which the policy does not allow now"},
		{name: "wildcard not judged", allow: []string{"github.com"}, hosts: "*.example.com"},
		{name: "wildcard beside a refused name", allow: []string{"github.com"}, hosts: "*.example.com,api.example.org",
			wantNote: "bound to api.example.org"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pol, err := policy.New(policy.Config{Allow: tc.allow, Deny: tc.deny, ReadOnly: tc.readOnly})
			if err != nil {
				t.Fatal(err)
			}
			sp, err := secrets.ParseFlag("GITHUB_TOKEN=" + tc.hosts)
			if err != nil {
				t.Fatal(err)
			}
			set, err := secrets.Load([]secrets.Spec{sp}, []string{"GITHUB_TOKEN=" + testToken}, nil)
			if err != nil {
				t.Fatal(err)
			}
			notes, err := unreachableSecretHosts(set, pol, tc.dynamic)
			if tc.wantErr != "" {
				var ee *exitError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &ee) || ee.code != exitUsage {
					t.Fatalf("error = %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(notes, "\n")
			if (tc.wantNote == "") != (got == "") || !strings.Contains(got, tc.wantNote) {
				t.Errorf("notes = %q, want %q", got, tc.wantNote)
			}
		})
	}
}

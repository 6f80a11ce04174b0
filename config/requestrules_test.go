package config

import (
	"errors"
	"strings"
	"testing"
)

// TestRequestRuleKeys checks that read_only, read_only_git and inspect
// are read, merged with the flags after the file's entries, and checked
// with the file's line named.
func TestRequestRuleKeys(t *testing.T) {
	src := "[network]\nread_only = [\"docs.test/**\"]\nread_only_git = [\"git.test/acme/*\"]\ninspect = [\"api.test\"]\n"
	f, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	pc := f.PolicyConfig(Overrides{ReadOnly: []string{"b.test"}, ReadOnlyGit: []string{"g.test"}, Inspect: []string{"i.test"}})
	for _, c := range []struct {
		name string
		got  []string
		want string
	}{
		{"read_only", pc.ReadOnly, "docs.test/**,b.test"},
		{"read_only_git", pc.ReadOnlyGit, "git.test/acme/*,g.test"},
		{"inspect", pc.Inspect, "api.test,i.test"},
	} {
		if got := strings.Join(c.got, ","); got != c.want {
			t.Errorf("%s = %q, want %q", c.name, got, c.want)
		}
	}

	for _, tt := range []struct {
		name, src, entry string
		line             int
	}{
		{"read_only with methods", "[network]\n\nread_only = [\"GET a.test\"]\n", "GET a.test", 3},
		{"read_only_git bad port", "[network]\nread_only_git = [\"a.test:0\"]\n", "a.test:0", 2},
		{"inspect with a path", "[network]\ninspect = [\"a.test/x\"]\n", "a.test/x", 2},
		{"inspect wrong type", "[network]\ninspect = \"a.test\"\n", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("conf.toml", []byte(tt.src))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, want a *config.Error", err)
			}
			if tt.line != 0 && (ce.Line != tt.line || ce.Entry != tt.entry) {
				t.Errorf("error at line %d entry %q, want line %d entry %q (%v)", ce.Line, ce.Entry, tt.line, tt.entry, err)
			}
		})
	}
}

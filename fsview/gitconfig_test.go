package fsview

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseGitConfig(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // section.subsection.name=value
		bad  bool
	}{
		{"plain", "[core]\n\thooksPath = .githooks\n\tbare = false\n", []string{"core..hookspath=.githooks", "core..bare=false"}, false},
		{"bare name", "[core]\nfsmonitor\n", []string{"core..fsmonitor=true"}, false},
		{"subsection", "[includeIf \"gitdir:~/work/\"]\n  path = ~/.gitconfig-work\n", []string{"includeif.gitdir:~/work/.path=~/.gitconfig-work"}, false},
		{"old subsection", "[Branch.Main]\nremote=origin\n", []string{"branch.main.remote=origin"}, false},
		{"comments", "# top\n[core] ; trailing\n  editor = vim # inline\n; full line\n", []string{"core..editor=vim"}, false},
		{"quotes", "[alias]\n\tx = \"!echo a  ;b\" c\n", []string{"alias..x=!echo a  ;b c"}, false},
		{"escapes", "[a]\n\tv = \"t\\tq\\\"\\\\\"\n", []string{"a..v=t\tq\"\\"}, false},
		{"continuation", "[a]\n\tv = one \\\n two\n", []string{"a..v=one  two"}, false},
		{"crlf", "[core]\r\n\thooksPath = h\r\n", []string{"core..hookspath=h"}, false},
		{"subsection escapes", "[remote \"a\\\"b\"]\n\turl = u\n", []string{"remote.a\"b.url=u"}, false},
		{"no section", "name = v\n", nil, true},
		{"unterminated header", "[core\n", nil, true},
		{"unterminated quote", "[a]\nv = \"x\n", nil, true},
		{"bad escape", "[a]\nv = \\q\n", nil, true},
		{"keeps what parsed", "[core]\nhooksPath = h\n[bad\n", []string{"core..hookspath=h"}, true},
		{"digit name", "[a]\n1x = y\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ents, err := parseGitConfig(tt.src)
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v, want error %v", err, tt.bad)
			}
			if err != nil && !errors.Is(err, errGitConfig) {
				t.Errorf("err = %v, not errGitConfig", err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, fmt.Sprintf("%s.%s.%s=%s", e.Section, e.Subsection, e.Name, e.Value))
			}
			diffLines(t, "entries", got, tt.want)
		})
	}
}

func FuzzParseGitConfig(f *testing.F) {
	f.Add("[core]\n\thooksPath = .husky/_\n[include]\n\tpath = ../x\n")
	f.Add("[includeIf \"gitdir:~/\"]\npath=\"a\\\"b\"\n")
	f.Add("[a.b]\nc\n; x\n# y\n")
	f.Fuzz(func(t *testing.T, src string) {
		ents, err := parseGitConfig(src)
		if err != nil && !errors.Is(err, errGitConfig) {
			t.Fatalf("error %v is not errGitConfig", err)
		}
		for _, e := range ents {
			if e.Section == "" || e.Name == "" || e.Section != strings.ToLower(e.Section) || e.Name != strings.ToLower(e.Name) {
				t.Fatalf("bad entry %+v", e)
			}
			for _, c := range []byte(e.Name) {
				if !isGitNameChar(c) {
					t.Fatalf("bad name %q", e.Name)
				}
			}
		}
	})
}

func TestResolve(t *testing.T) {
	fsys := newFakeFS("/a/b/c", "/l1 -> a/b", "/l2 -> /l1/../b/c", "/loop1 -> loop2", "/loop2 -> loop1", "/d/up -> ../a")
	tests := []struct{ in, want, err string }{
		{"/a/b/c", "/a/b/c", ""},
		{"/l1/c", "/a/b/c", ""},
		{"/l2", "/a/b/c", ""},
		{"/d/up/b/./c", "/a/b/c", ""},
		{"/a/../a/b", "/a/b", ""},
		{"/loop1", "", "too many levels"},
		{"/a/x", "", "not exist"},
		{"rel", "", "not an absolute"},
	}
	for _, tt := range tests {
		got, err := resolve(fsys, tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("resolve(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if got, err := resolveExisting(fsys, "/l1/new/deeper"); err != nil || got != "/a/b/new/deeper" {
		t.Errorf("resolveExisting = %q, %v", got, err)
	}
}

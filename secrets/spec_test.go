package secrets

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestParseFlag(t *testing.T) {
	tests := []struct {
		in      string
		name    string
		file    string
		hosts   []string // canonical entries
		wantErr string   // substring; "" means success
	}{
		{in: "GITHUB_TOKEN=api.github.com,github.com", name: "GITHUB_TOKEN", hosts: []string{"api.github.com", "github.com"}},
		{in: "T=**.example.com:443", name: "T", hosts: []string{"**.example.com:443"}},
		{in: "T= a.example.com , b.example.com ", name: "T", hosts: []string{"a.example.com", "b.example.com"}},
		{in: "T=203.0.113.0/24,[2001:db8::1]:8443", name: "T", hosts: []string{"203.0.113.0/24", "[2001:db8::1]:8443"}},
		{in: "NPM@/run/keys/npm=registry.npmjs.org", name: "NPM", file: "/run/keys/npm", hosts: []string{"registry.npmjs.org"}},
		{in: "K@/a=b/c=d.example", name: "K", file: "/a=b/c", hosts: []string{"d.example"}},
		{in: "_x1=Example.COM.", name: "_x1", hosts: []string{"example.com"}},
		{in: "GITHUB_TOKEN", wantErr: "no '='"},
		{in: "=github.com", wantErr: "empty secret name"},
		{in: "1X=github.com", wantErr: "not an environment variable name"},
		{in: "A-B=github.com", wantErr: "not an environment variable name"},
		{in: "T=", wantErr: "no host patterns"},
		{in: "T=a.example,,b.example", wantErr: "empty host pattern"},
		{in: "T=*.com", wantErr: "public suffix"},
		{in: "T=https://github.com/", wantErr: "invalid entry"},
		{in: "T=GET github.com", wantErr: "names methods or a path"},
		{in: "T=github.com/org/**", wantErr: "names methods or a path"},
		{in: "T@=github.com", wantErr: "empty file"},
		{in: "T@/file", wantErr: "no '=' after the file"},
		{in: "T=github.com:0", wantErr: "port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			sp, err := ParseFlag(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFlag(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "--secret") {
					t.Errorf("error %q does not name the flag", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFlag(%q): %v", tt.in, err)
			}
			if sp.Name != tt.name || sp.File != tt.file {
				t.Errorf("got name %q file %q, want %q %q", sp.Name, sp.File, tt.name, tt.file)
			}
			var got []string
			for _, h := range sp.Hosts {
				got = append(got, h.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.hosts, " ") {
				t.Errorf("hosts %q, want %q", got, tt.hosts)
			}
			again, err := ParseFlag(sp.String())
			if err != nil || again.String() != sp.String() {
				t.Errorf("String() %q does not parse back to itself: %v %q", sp.String(), err, again.String())
			}
		})
	}
}

func TestValue(t *testing.T) {
	files := map[string]string{
		"/keys/tok":   "ghp_0123456789abcdefABCDEF0123456789abcd\n",
		"/keys/crlf":  "  tok-value-1234567890\r\n",
		"/keys/empty": "\n \n",
		"/keys/ctl":   "abc\x01def",
		"/keys/multi": "line1\nline2",
	}
	readFile := func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	env := []string{"A=first", "TOKEN=old", "TOKEN=new-value", "EMPTY=", "UTF=caf\u00e9"}
	tests := []struct {
		name, file string
		want       string
		wantErr    string
	}{
		{name: "TOKEN", want: "new-value"},
		{name: "A", want: "first"},
		{name: "MISSING", wantErr: "no variable MISSING in sandgate's environment"},
		{name: "EMPTY", wantErr: "is empty"},
		{name: "UTF", wantErr: "printable ASCII"},
		{name: "T", file: "/keys/tok", want: "ghp_0123456789abcdefABCDEF0123456789abcd"},
		{name: "T", file: "/keys/crlf", want: "tok-value-1234567890"},
		{name: "T", file: "/keys/empty", wantErr: "is empty"},
		{name: "T", file: "/keys/ctl", wantErr: "byte 0x01"},
		{name: "T", file: "/keys/multi", wantErr: "byte 0x0a"},
		{name: "T", file: "/keys/none", wantErr: "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name+tt.file, func(t *testing.T) {
			got, err := Spec{Name: tt.name, File: tt.file}.Value(env, readFile)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "secret "+tt.name) {
					t.Fatalf("error = %v, want one naming secret %s and containing %q", err, tt.name, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Value = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := (Spec{Name: "T", File: "/keys/none"}).Value(nil, readFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file's error does not wrap fs.ErrNotExist: %v", err)
	}
}

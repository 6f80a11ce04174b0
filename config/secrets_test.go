package config

import (
	"errors"
	"strings"
	"testing"
)

func TestSecretsTable(t *testing.T) {
	src := `[network]
allowed_domains = ["github.com"]

[secrets]
GITHUB_TOKEN = ["api.github.com", "github.com"]
NPM_TOKEN = { hosts = ["registry.npmjs.org"], file = "~/.config/tokens/npm" }
`
	f, err := Parse("config.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := f.SecretSpecs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sp := range specs {
		got = append(got, sp.String())
	}
	want := []string{"GITHUB_TOKEN=api.github.com,github.com", "NPM_TOKEN@~/.config/tokens/npm=registry.npmjs.org"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("SecretSpecs = %q, want %q", got, want)
	}
	empty, err := Parse("config.toml", []byte("[network]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if specs, err := empty.SecretSpecs(); err != nil || len(specs) != 0 {
		t.Errorf("no [secrets]: %v %v", specs, err)
	}
}

func TestSecretsTableErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // substrings of the error
	}{
		{"bad name", "[secrets]\n\"1X\" = [\"a.example.com\"]\n", []string{"config.toml:2", "secrets.1X", "not an environment variable name"}},
		{"bad host", "[secrets]\nT = [\"*.com\"]\n", []string{"config.toml:2", "secrets.T", "public suffix"}},
		{"no hosts", "[secrets]\nT = []\n", []string{"config.toml:2", "no host patterns"}},
		{"path rule", "[secrets]\nT = [\"GET a.example.com\"]\n", []string{"methods or a path"}},
		{"relative file", "[secrets]\nT = { hosts = [\"a.example.com\"], file = \"tok\" }\n", []string{"config.toml:2", "must be an absolute path"}},
		{"unknown key", "[secrets]\nT = { hosts = [\"a.example.com\"], path = \"/x\" }\n", []string{"unknown key \"path\"", "hosts and file"}},
		{"string", "[secrets]\nT = \"a.example.com\"\n", []string{"list of host patterns or a table"}},
		{"numbers", "[secrets]\nT = [1]\n", []string{"list of strings"}},
		{"file type", "[secrets]\nT = { hosts = [\"a.example.com\"], file = 1 }\n", []string{"file must be a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(tt.src))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse error %v is not a *config.Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

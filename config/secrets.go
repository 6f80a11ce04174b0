package config

import (
	"fmt"
	"sort"

	"github.com/sandgate/sandgate/secrets"
)

// Secret is one entry of the [secrets] table (package secrets): the
// variable NAME (the key) gets a placeholder, and the real value, from
// sandgate's own $NAME or from File, is sent only to Hosts. Written either
// as a list of host patterns or as a table:
//
//	[secrets]
//	GITHUB_TOKEN = ["api.github.com", "github.com"]
//	NPM_TOKEN = { hosts = ["registry.npmjs.org"], file = "~/.config/tokens/npm" }
type Secret struct {
	Hosts []string
	// File is where the real value is read from ("" = the environment);
	// an absolute path or one starting with ~/.
	File string
}

// UnmarshalTOML decodes a list of strings or a table with the keys hosts
// (a list of strings) and file (a string).
func (s *Secret) UnmarshalTOML(v any) error {
	strs := func(v any, what string) ([]string, error) {
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s must be a list of host patterns, got %s", what, describeValue(v))
		}
		out := make([]string, 0, len(list))
		for _, e := range list {
			str, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s must be a list of strings, got %s", what, describeValue(v))
			}
			out = append(out, str)
		}
		return out, nil
	}
	switch x := v.(type) {
	case []any:
		h, err := strs(x, "a secret")
		s.Hosts = h
		return err
	case map[string]any:
		for k, val := range x {
			switch k {
			case "hosts":
				h, err := strs(val, "hosts")
				if err != nil {
					return err
				}
				s.Hosts = h
			case "file":
				str, ok := val.(string)
				if !ok {
					return fmt.Errorf("file must be a string, got %s", describeValue(val))
				}
				s.File = str
			default:
				return fmt.Errorf("unknown key %q in a secret (the keys are hosts and file)", k)
			}
		}
		return nil
	}
	return fmt.Errorf("a secret must be a list of host patterns or a table { hosts = [...], file = \"...\" }, got %s", describeValue(v))
}

// validateSecrets checks every [secrets] entry: a variable name, host
// patterns, a file path that is absolute or starts with ~/.
func (f *File) validateSecrets() error {
	for _, name := range sortedKeys(f.Secrets) {
		s := f.Secrets[name]
		line := f.lineOfKeyIn("secrets", name)
		if _, err := secrets.NewSpec(name, s.File, s.Hosts); err != nil {
			return &Error{Path: f.Path, Line: line, Entry: "secrets." + name, Err: err}
		}
		if s.File != "" {
			if err := checkPath(s.File); err != nil {
				return &Error{Path: f.Path, Line: line, Entry: "secrets." + name, Err: fmt.Errorf("file %q %w", s.File, err)}
			}
		}
	}
	return nil
}

// SecretSpecs are the [secrets] entries, sorted by name. File is as
// written (a leading ~ is the caller's to expand). The entries were
// validated when the file was parsed.
func (f *File) SecretSpecs() ([]secrets.Spec, error) {
	names := make([]string, 0, len(f.Secrets))
	for n := range f.Secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]secrets.Spec, 0, len(names))
	for _, n := range names {
		sp, err := secrets.NewSpec(n, f.Secrets[n].File, f.Secrets[n].Hosts)
		if err != nil {
			return nil, &Error{Path: f.Path, Line: f.lineOfKeyIn("secrets", n), Entry: "secrets." + n, Err: err}
		}
		out = append(out, sp)
	}
	return out, nil
}

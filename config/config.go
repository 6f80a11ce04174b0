// Package config loads sandgate's TOML configuration file and merges it with
// command-line flags. Errors name the file, the line and the offending entry.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/proxy"
)

// Network is the [network] table.
type Network struct {
	AllowedDomains           []string `toml:"allowed_domains"`
	DeniedDomains            []string `toml:"denied_domains"`
	AllowLocalBinding        bool     `toml:"allow_local_binding"`
	AllowPrivateDestinations bool     `toml:"allow_private_destinations"`
	DeniedResolvedAddresses  []string `toml:"denied_resolved_addresses"`
	// AllowUnixSockets are unix socket paths the command may connect to
	// (see filesystem.go).
	AllowUnixSockets []string `toml:"allow_unix_sockets"`
	// ReadOnly, ReadOnlyGit and Inspect are policy.Config's entries of
	// the same names: hosts whose requests are decided one by one.
	ReadOnly    []string `toml:"read_only"`
	ReadOnlyGit []string `toml:"read_only_git"`
	Inspect     []string `toml:"inspect"`
}

// Proxy is the [proxy] table: resource bounds of the proxy servers.
type Proxy struct {
	MaxHeaderBytes int      `toml:"max_header_bytes"`
	HeaderTimeout  Duration `toml:"header_timeout"`
	DialTimeout    Duration `toml:"dial_timeout"`
	IdleTimeout    Duration `toml:"idle_timeout"`
	MaxConns       int      `toml:"max_conns"`

	ResponseHeadTimeout Duration `toml:"response_head_timeout"`

	// Upstream is the proxy sandgate connects through once its policy has
	// allowed a destination: http://[user:pass@]host:port,
	// socks5://[user:pass@]host:port, or "env" for the caller's own
	// HTTPS_PROXY/ALL_PROXY/HTTP_PROXY and NO_PROXY. "" connects directly.
	Upstream string `toml:"upstream"`
	// UpstreamSend is what the upstream is asked to connect to: "name"
	// (the default; the upstream resolves) or "address" (sandgate resolves
	// and checks, then sends the checked address).
	UpstreamSend string `toml:"upstream_send"`
}

// File is a whole configuration file.
type File struct {
	Network     Network     `toml:"network"`
	Proxy       Proxy       `toml:"proxy"`
	Filesystem  Filesystem  `toml:"filesystem"`
	Environment Environment `toml:"environment"`
	// Secrets is the [secrets] table (see secrets.go): NAME = [hosts] or
	// NAME = { hosts = [...], file = "..." }.
	Secrets map[string]Secret `toml:"secrets"`

	// Path is where the file was read from ("" when no file was read).
	Path string `toml:"-"`
	raw  []string
}

// Duration is a time.Duration written as a Go duration string ("10s", "5m").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"10s\" or \"5m\")", string(b))
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: negative", string(b))
	}
	d.Duration = v
	return nil
}

// Error is a configuration problem located in a file.
type Error struct {
	Path  string // file path
	Line  int    // 1-based line, 0 when unknown
	Entry string // the offending entry or key, "" when not about one entry
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Entry != "" {
		fmt.Fprintf(&b, "entry %q: ", e.Entry)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// DefaultPath returns the configuration file used when --config is not given:
// sandgate/config.toml in the user's configuration directory.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("locating the user config directory: %w", err)
	}
	return filepath.Join(dir, "sandgate", "config.toml"), nil
}

// Load reads path. When path is "" the default file is read if it exists;
// a missing default file yields an empty configuration. A named file that
// does not exist is an error.
func Load(path string) (*File, error) {
	explicit := path != ""
	if !explicit {
		p, err := DefaultPath()
		if err != nil {
			return &File{}, nil
		}
		path = p
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return &File{}, nil
		}
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data (the contents of the file at path) and validates every
// entry. It never touches the file system.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path, raw: strings.Split(string(data), "\n")}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, decodeError(path, err)
	}
	if err := f.checkSchema(doc); err != nil {
		return nil, err
	}
	md, err := toml.Decode(string(data), f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Path: path, Line: pe.Position.Line, Err: errors.New(pe.Message)}
		}
		// Type errors from the decoder name the key but carry no position.
		return nil, &Error{Path: path, Err: err}
	}
	if und := md.Undecoded(); len(und) > 0 {
		key := und[0].String()
		return nil, &Error{Path: path, Line: f.lineOfKey(und[0][len(und[0])-1]), Entry: key, Err: errors.New("unknown key")}
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// decodeError locates a TOML syntax error.
func decodeError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{Path: path, Line: pe.Position.Line, Err: errors.New(pe.Message)}
	}
	return &Error{Path: path, Err: err}
}

func (f *File) validate() error {
	checks := []struct {
		key     string
		entries []string
		check   func(string) error
	}{
		{"network.allowed_domains", f.Network.AllowedDomains, func(s string) error { _, err := policy.ParseEntry(s); return err }},
		{"network.denied_domains", f.Network.DeniedDomains, func(s string) error { _, err := policy.ParseEntry(s); return err }},
		{"network.denied_resolved_addresses", f.Network.DeniedResolvedAddresses, func(s string) error {
			_, err := policy.New(policy.Config{DeniedResolvedAddresses: []string{s}})
			return err
		}},
		{"network.read_only", f.Network.ReadOnly, func(s string) error { _, err := policy.New(policy.Config{ReadOnly: []string{s}}); return err }},
		{"network.read_only_git", f.Network.ReadOnlyGit, func(s string) error { _, err := policy.New(policy.Config{ReadOnlyGit: []string{s}}); return err }},
		{"network.inspect", f.Network.Inspect, func(s string) error { _, err := policy.New(policy.Config{Inspect: []string{s}}); return err }},
	}
	for _, c := range checks {
		for _, e := range c.entries {
			if err := c.check(e); err != nil {
				return &Error{Path: f.Path, Line: f.lineOfValue(e), Entry: e, Err: fmt.Errorf("in %s: %w", c.key, err)}
			}
		}
	}
	if err := f.validateFilesystem(); err != nil {
		return err
	}
	if err := f.validateSecrets(); err != nil {
		return err
	}
	p := f.Proxy
	if p.MaxHeaderBytes < 0 {
		return &Error{Path: f.Path, Line: f.lineOfKey("max_header_bytes"), Entry: "proxy.max_header_bytes", Err: errors.New("must not be negative")}
	}
	if p.MaxConns < 0 {
		return &Error{Path: f.Path, Line: f.lineOfKey("max_conns"), Entry: "proxy.max_conns", Err: errors.New("must not be negative")}
	}
	return f.validateUpstream()
}

// validateUpstream checks [proxy] upstream and upstream_send. The entry
// named is the key, never the value: an upstream URL may hold a password.
func (f *File) validateUpstream() error {
	p := f.Proxy
	if v := strings.TrimSpace(p.Upstream); v != "" && v != "env" {
		if _, err := egress.ParseUpstream(v); err != nil {
			return &Error{Path: f.Path, Line: f.lineOfKey("upstream"), Entry: "proxy.upstream", Err: fmt.Errorf("%w; or \"env\" for the caller's HTTPS_PROXY/HTTP_PROXY", err)}
		}
	}
	if _, err := egress.ParseUpstreamSend(p.UpstreamSend); err != nil {
		return &Error{Path: f.Path, Line: f.lineOfKey("upstream_send"), Entry: "proxy.upstream_send", Err: err}
	}
	return nil
}

// lineOfValue finds the first line holding s as a quoted string.
func (f *File) lineOfValue(s string) int {
	for _, q := range []string{`"` + s + `"`, `'` + s + `'`} {
		for i, l := range f.raw {
			if strings.Contains(l, q) {
				return i + 1
			}
		}
	}
	return 0
}

// lineOfKey finds the first line assigning key.
func (f *File) lineOfKey(key string) int {
	for i, l := range f.raw {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, key) {
			rest := strings.TrimSpace(t[len(key):])
			if strings.HasPrefix(rest, "=") {
				return i + 1
			}
		}
	}
	return 0
}

// Overrides are command-line additions to the file.
type Overrides struct {
	Allow                    []string
	Deny                     []string
	AllowLocalBinding        bool
	AllowPrivateDestinations bool
	ReadOnly                 []string // --read-only
	ReadOnlyGit              []string // --read-only-git
	Inspect                  []string // --inspect
}

// PolicyConfig merges the file with flag overrides: flags add entries to the
// file's lists, and boolean flags can only turn a permission on.
func (f *File) PolicyConfig(o Overrides) policy.Config {
	return policy.Config{
		Allow:                    append(append([]string(nil), f.Network.AllowedDomains...), o.Allow...),
		Deny:                     append(append([]string(nil), f.Network.DeniedDomains...), o.Deny...),
		AllowPrivateDestinations: f.Network.AllowPrivateDestinations || o.AllowPrivateDestinations,
		DeniedResolvedAddresses:  append([]string(nil), f.Network.DeniedResolvedAddresses...),
		ReadOnly:                 append(append([]string(nil), f.Network.ReadOnly...), o.ReadOnly...),
		ReadOnlyGit:              append(append([]string(nil), f.Network.ReadOnlyGit...), o.ReadOnlyGit...),
		Inspect:                  append(append([]string(nil), f.Network.Inspect...), o.Inspect...),
	}
}

// AllowLocalBinding reports whether the file or the flag asks for it.
func (f *File) AllowLocalBinding(o Overrides) bool {
	return f.Network.AllowLocalBinding || o.AllowLocalBinding
}

// Limits returns the proxy limits; zero fields keep the proxy's defaults.
func (f *File) Limits() proxy.Limits {
	return proxy.Limits{
		MaxHeaderBytes: f.Proxy.MaxHeaderBytes,
		HeaderTimeout:  f.Proxy.HeaderTimeout.Duration,
		DialTimeout:    f.Proxy.DialTimeout.Duration,
		IdleTimeout:    f.Proxy.IdleTimeout.Duration,
		MaxConns:       f.Proxy.MaxConns,

		ResponseHeadTimeout: f.Proxy.ResponseHeadTimeout.Duration,
	}
}

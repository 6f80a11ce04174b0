package winsec

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/sandgate/sandgate/proxyenv"
)

// LaunchArg is the first argument (after the program name) with which an
// identity run starts sandgate itself as the sandbox user; that process
// (the launcher) reads LaunchEnv, drops its token's privileges and starts
// the command.
const LaunchArg = "__sandgate_windows_launch__"

// LaunchEnv is the variable carrying the launcher's Launch request. The
// launcher removes it from the environment before starting the command.
const LaunchEnv = "SANDGATE_WINDOWS_LAUNCH"

// Launch is what the launcher needs to start the command.
type Launch struct {
	Args           []string `json:"args"`             // the command and its arguments
	Dir            string   `json:"dir"`              // working directory ("" = inherited)
	SandboxGroupID string   `json:"sandbox_group_id"` // SID kept enabled in the restricted token
}

// EncodeLaunch returns l as the value of LaunchEnv.
func EncodeLaunch(l Launch) (string, error) {
	if len(l.Args) == 0 || l.Args[0] == "" {
		return "", errors.New("launch request without a command")
	}
	raw, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// DecodeLaunch parses a LaunchEnv value.
func DecodeLaunch(v string) (Launch, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return Launch{}, fmt.Errorf("launch request: %w", err)
	}
	var l Launch
	if err := json.Unmarshal(raw, &l); err != nil {
		return Launch{}, fmt.Errorf("launch request: %w", err)
	}
	if len(l.Args) == 0 || l.Args[0] == "" {
		return Launch{}, errors.New("launch request without a command")
	}
	return l, nil
}

// ProxyRun describes the proxies of one proxy-enforced identity run.
type ProxyRun struct {
	HTTPPort, SOCKSPort uint16 // loopback ports sandgate serves the run on
	User, Password      string // per-run proxy credentials
	// AllowLocalBinding keeps the usual NO_PROXY (localhost, 127.0.0.1,
	// ::1); otherwise NO_PROXY is set empty, because loopback here is the
	// host's and local names must go through the policy too.
	AllowLocalBinding bool
	Executable        string // sandgate's path, for GIT_SSH_COMMAND ("" = not set)
}

// URLs returns the HTTP and SOCKS5 proxy URLs of the run, with the per-run
// credentials in them: the sandbox user shares the host's loopback with
// every other local user, so the proxy must know its client.
func (p ProxyRun) URLs() (httpURL, socksURL string) {
	ui := url.UserPassword(p.User, p.Password)
	h := url.URL{Scheme: "http", User: ui, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.HTTPPort)))}
	s := url.URL{Scheme: "socks5h", User: ui, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.SOCKSPort)))}
	return h.String(), s.String()
}

// Variables carrying the SOCKS credentials to `sandgate socks-connect`.
const (
	SOCKSUserEnv     = "SANDGATE_SOCKS_USER"
	SOCKSPasswordEnv = "SANDGATE_SOCKS_PASSWORD"
)

// noProxyNames are the NO_PROXY spellings ProxyEnv sets empty.
var noProxyNames = []string{"NO_PROXY", "no_proxy", "npm_config_noproxy", "NPM_CONFIG_NOPROXY"}

// ProxyEnv returns the environment of a proxy-enforced identity run: base
// without any inherited proxy variable, plus sandgate's (package proxyenv)
// with the credentials in the URLs (and in RSYNC_PROXY, SOCKSUserEnv and
// SOCKSPasswordEnv), with NO_PROXY empty unless p.AllowLocalBinding. The result is in Windows
// form (see WindowsEnv). It fails when a proxy port is zero or the
// credentials are missing, and checks its own output: the loopback ports
// named in it must be exactly the run's two ports.
func ProxyEnv(base []string, p ProxyRun) ([]string, error) {
	if p.HTTPPort == 0 || p.SOCKSPort == 0 || p.HTTPPort == p.SOCKSPort {
		return nil, fmt.Errorf("identity run needs two distinct proxy ports, got %d and %d", p.HTTPPort, p.SOCKSPort)
	}
	if p.User == "" || p.Password == "" {
		return nil, errors.New("identity run needs per-run proxy credentials")
	}
	h, s := p.URLs()
	c := proxyenv.Config{HTTP: h, SOCKS: s, Executable: p.Executable}
	if p.AllowLocalBinding {
		c.NoProxy = proxyenv.DefaultNoProxy
	}
	vars := proxyenv.Vars(c)
	for i, kv := range vars {
		// rsync takes the credentials as user:password@host:port.
		if strings.HasPrefix(kv, "RSYNC_PROXY=") {
			u, _ := url.Parse(h)
			vars[i] = "RSYNC_PROXY=" + u.User.String() + "@" + u.Host
		}
	}
	// `sandgate socks-connect` (the ProxyCommand of GIT_SSH_COMMAND) reads these.
	vars = append(vars, SOCKSUserEnv+"="+p.User, SOCKSPasswordEnv+"="+p.Password)
	if !p.AllowLocalBinding {
		for _, n := range noProxyNames {
			vars = append(vars, n+"=")
		}
	}
	env := WindowsEnv(proxyenv.Merge(base, vars))
	got, problems := proxyenv.PortsFromEnv(env)
	want := []uint16{min(p.HTTPPort, p.SOCKSPort), max(p.HTTPPort, p.SOCKSPort)}
	if len(problems) > 0 || !slices.Equal(got, want) {
		return nil, fmt.Errorf("internal error: the run's proxy environment names ports %v (%s), want %v", got, strings.Join(problems, "; "), want)
	}
	return env, nil
}

// NoNetworkEnv returns the environment of an identity run without network:
// base without any inherited proxy variable, in Windows form.
func NoNetworkEnv(base []string) []string {
	return WindowsEnv(proxyenv.Merge(base, nil))
}

// WindowsEnv returns env as Windows keeps an environment: names compare
// without regard to case, so of entries whose names differ only in case
// the last one wins (keeping the spelling of the first); entries are sorted
// by upper-cased name, as CreateProcess expects; entries without "=" or
// with an empty name are dropped, except the "=C:=C:\dir" entries Windows
// uses for per-drive directories, which are kept first.
func WindowsEnv(env []string) []string {
	type entry struct{ name, value string }
	idx := map[string]int{}
	var entries []entry
	var drives []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "=") {
			if strings.Contains(kv[1:], "=") {
				drives = append(drives, kv)
			}
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		u := strings.ToUpper(k)
		if i, seen := idx[u]; seen {
			entries[i].value = v
			continue
		}
		idx[u] = len(entries)
		entries = append(entries, entry{k, v})
	}
	sort.SliceStable(entries, func(i, j int) bool {
		return strings.ToUpper(entries[i].name) < strings.ToUpper(entries[j].name)
	})
	out := append([]string(nil), drives...)
	for _, e := range entries {
		out = append(out, e.name+"="+e.value)
	}
	return out
}

// EnvBlock encodes env (already in Windows form) as the UTF-16 environment
// block CreateProcessWithLogonW takes with CREATE_UNICODE_ENVIRONMENT: each
// entry NUL-terminated, the block terminated by one more NUL. An entry
// containing NUL is refused.
func EnvBlock(env []string) ([]uint16, error) {
	var b []uint16
	for _, kv := range env {
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("environment entry %q contains NUL", strings.SplitN(kv, "=", 2)[0])
		}
		b = append(b, utf16.Encode([]rune(kv))...)
		b = append(b, 0)
	}
	if len(b) == 0 {
		b = append(b, 0)
	}
	return append(b, 0), nil
}

// TakePorts returns the first n ports of candidates for which take reports
// success (take binds a listener and keeps it). It fails, naming how many
// were tried, when fewer than n could be taken.
func TakePorts(candidates []uint16, n int, take func(uint16) bool) ([]uint16, error) {
	var got []uint16
	for _, p := range candidates {
		if len(got) == n {
			break
		}
		if take(p) {
			got = append(got, p)
		}
	}
	if len(got) < n {
		return got, fmt.Errorf("all of the %d reserved proxy ports are in use (by other identity runs or other programs); wait for a run to end, or reserve more ports with `sandgate setup`", len(candidates))
	}
	return got, nil
}

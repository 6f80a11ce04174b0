package winsec

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/sandgate/sandgate/proxyenv"
)

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[strings.ToUpper(k)] = v
	}
	return m
}

// proxyEnv is the environment of a proxy-enforced identity run on Windows:
// proxyenv.WithCredentials in Windows form.
func proxyEnv(base []string, p proxyenv.CredentialedRun) ([]string, error) {
	env, err := proxyenv.WithCredentials(base, p)
	if err != nil {
		return nil, err
	}
	return WindowsEnv(env), nil
}

// TestProxyEnv: the credentialed proxy environment survives WindowsEnv:
// every name once, the credentials in the URLs, the inherited proxy
// settings gone.
func TestProxyEnv(t *testing.T) {
	base := []string{"PATH=C:\\Windows", "Http_Proxy=http://evil:1", "sandgate_socks_password=old", "NO_PROXY=*", "GIT_PROXY_COMMAND=x", "HOME=C:\\Users\\a"}
	p := proxyenv.CredentialedRun{HTTPPort: 47101, SOCKSPort: 47100, User: "run", Password: "p@ss:w/rd", Executable: `C:\sandgate.exe`}
	env, err := proxyEnv(base, p)
	if err != nil {
		t.Fatal(err)
	}
	m := envMap(env)
	u, err := url.Parse(m["HTTP_PROXY"])
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := u.User.Password(); u.User.Username() != "run" || pw != "p@ss:w/rd" || u.Host != "127.0.0.1:47101" || u.Scheme != "http" {
		t.Errorf("HTTP_PROXY = %q", m["HTTP_PROXY"])
	}
	if s, _ := url.Parse(m["ALL_PROXY"]); s == nil || s.Scheme != "socks5h" || s.Host != "127.0.0.1:47100" || s.User.Username() != "run" {
		t.Errorf("ALL_PROXY = %q", m["ALL_PROXY"])
	}
	if m["RSYNC_PROXY"] != "run:p%40ss%3Aw%2Frd@127.0.0.1:47101" {
		t.Errorf("RSYNC_PROXY = %q", m["RSYNC_PROXY"])
	}
	if m["SANDGATE_SOCKS_USER"] != "run" || m["SANDGATE_SOCKS_PASSWORD"] != "p@ss:w/rd" {
		t.Errorf("SOCKS credentials = %q %q", m["SANDGATE_SOCKS_USER"], m["SANDGATE_SOCKS_PASSWORD"])
	}
	if v, ok := m["NO_PROXY"]; !ok || v != "" {
		t.Errorf("NO_PROXY = %q (set %v), want set and empty", v, ok)
	}
	if _, ok := m["GIT_PROXY_COMMAND"]; ok {
		t.Error("inherited GIT_PROXY_COMMAND kept")
	}
	if m["PATH"] != `C:\Windows` || m["HOME"] != `C:\Users\a` {
		t.Errorf("ordinary variables lost: %v", m)
	}
	// Windows names are case-insensitive: every name appears once.
	seen := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if seen[strings.ToUpper(k)] {
			t.Errorf("%s set twice", k)
		}
		seen[strings.ToUpper(k)] = true
	}
	ports, problems := proxyenv.PortsFromEnv(env)
	if len(problems) > 0 || !slices.Equal(ports, []uint16{47100, 47101}) {
		t.Errorf("PortsFromEnv = %v %v", ports, problems)
	}

	p.AllowLocalBinding = true
	env, err = proxyEnv(base, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := envMap(env)["NO_PROXY"]; got != "localhost,127.0.0.1,::1" {
		t.Errorf("with allow_local_binding NO_PROXY = %q", got)
	}

	for _, bad := range []proxyenv.CredentialedRun{
		{HTTPPort: 0, SOCKSPort: 1, User: "u", Password: "p"},
		{HTTPPort: 5, SOCKSPort: 5, User: "u", Password: "p"},
		{HTTPPort: 5, SOCKSPort: 6, User: "u"},
	} {
		if _, err := proxyEnv(base, bad); err == nil {
			t.Errorf("proxyEnv(%+v) accepted", bad)
		}
	}
}

func TestNoNetworkEnv(t *testing.T) {
	env := NoNetworkEnv([]string{"https_proxy=http://127.0.0.1:1", "ALL_PROXY=socks5://x:1", "Path=C:\\bin"})
	if !slices.Equal(env, []string{`Path=C:\bin`}) {
		t.Errorf("NoNetworkEnv = %q", env)
	}
}

func TestWindowsEnv(t *testing.T) {
	got := WindowsEnv([]string{"b=1", "Path=x", "A=2", "PATH=y", "=C:=C:\\w", "noequals", "=bad", "a=3"})
	want := []string{`=C:=C:\w`, "A=3", "b=1", "Path=y"}
	if !slices.Equal(got, want) {
		t.Errorf("WindowsEnv = %q, want %q", got, want)
	}
}

func TestEnvBlock(t *testing.T) {
	b, err := EnvBlock([]string{"A=1", "É=ü"})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(append(utf16.Encode([]rune("A=1")), 0), utf16.Encode([]rune("É=ü"))...), 0, 0)
	if !slices.Equal(b, want) {
		t.Errorf("EnvBlock = %v, want %v", b, want)
	}
	if b, _ := EnvBlock(nil); !slices.Equal(b, []uint16{0, 0}) {
		t.Errorf("empty EnvBlock = %v", b)
	}
	if _, err := EnvBlock([]string{"A=1\x00B=2"}); err == nil {
		t.Error("EnvBlock accepted an embedded NUL")
	}
}

func TestLaunchRoundTrip(t *testing.T) {
	l := Launch{Args: []string{"git", "clone", "a b"}, Dir: `C:\w`, SandboxGroupID: "S-1-5-21-1-2-3-1000"}
	v, err := EncodeLaunch(l)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(v, "=\x00 ") {
		t.Errorf("encoded launch %q is not a plain token", v)
	}
	got, err := DecodeLaunch(v)
	if err != nil || !slices.Equal(got.Args, l.Args) || got.Dir != l.Dir || got.SandboxGroupID != l.SandboxGroupID {
		t.Errorf("DecodeLaunch = %+v, %v", got, err)
	}
	if _, err := EncodeLaunch(Launch{}); err == nil {
		t.Error("EncodeLaunch accepted no command")
	}
	for _, bad := range []string{"", "!!", "e30"} { // e30 = "{}"
		if _, err := DecodeLaunch(bad); err == nil {
			t.Errorf("DecodeLaunch(%q) accepted", bad)
		}
	}
}

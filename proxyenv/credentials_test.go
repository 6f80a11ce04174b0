package proxyenv

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// lastValue returns the value of the last entry named k (as exec uses it).
func lastValue(env []string, k string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], k+"="); ok {
			return v, true
		}
	}
	return "", false
}

// The values the Linux identity backend has always given CMD (credentials
// of hex digits need no escaping, so both spellings agree).
func TestWithCredentialsPlain(t *testing.T) {
	r := CredentialedRun{HTTPPort: 47100, SOCKSPort: 47101, User: "u", Password: "p4ss", Executable: "/usr/bin/sandgate"}
	base := []string{"PATH=/bin", "HTTPS_PROXY=http://corp:8080", "no_proxy=corp", "SANDGATE_SOCKS_PASSWORD=old", "HOME=/root"}
	env, err := WithCredentials(base, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"HTTP_PROXY": "http://u:p4ss@127.0.0.1:47100", "HTTPS_PROXY": "http://u:p4ss@127.0.0.1:47100",
		"ALL_PROXY": "socks5h://u:p4ss@127.0.0.1:47101", "RSYNC_PROXY": "u:p4ss@127.0.0.1:47100",
		"NO_PROXY": "", "no_proxy": "", "npm_config_noproxy": "", "NPM_CONFIG_NOPROXY": "",
		"SANDGATE_SOCKS_USER": "u", "SANDGATE_SOCKS_PASSWORD": "p4ss", "PATH": "/bin", "HOME": "/root",
		// git sends the credentials with its first request, not after a 407.
		"GIT_HTTP_PROXY_AUTHMETHOD": "basic",
		"JAVA_TOOL_OPTIONS":         "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=47100 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=47100",
	} {
		if v, ok := lastValue(env, k); !ok || v != want {
			t.Errorf("%s = %q (set %v), want %q", k, v, ok, want)
		}
	}
	if v, _ := lastValue(env, "GIT_SSH_COMMAND"); !strings.Contains(v, "socks-connect 127.0.0.1:47101 %h %p") {
		t.Errorf("GIT_SSH_COMMAND = %q", v)
	}
	seen := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if seen[k] {
			t.Errorf("%s appears twice", k)
		}
		seen[k] = true
	}
	if !slices.Equal(base, []string{"PATH=/bin", "HTTPS_PROXY=http://corp:8080", "no_proxy=corp", "SANDGATE_SOCKS_PASSWORD=old", "HOME=/root"}) {
		t.Errorf("base modified: %q", base)
	}

	r.AllowLocalBinding = true
	env, err = WithCredentials(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := lastValue(env, "NO_PROXY"); v != "localhost,127.0.0.1,::1" {
		t.Errorf("NO_PROXY with local binding = %q", v)
	}
}

// Credentials that need escaping are escaped as URL userinfo everywhere a
// URL (or RSYNC_PROXY) carries them, and given as they are to
// socks-connect.
func TestWithCredentialsEscaped(t *testing.T) {
	r := CredentialedRun{HTTPPort: 47101, SOCKSPort: 47100, User: "run", Password: "p@ss:w/rd", Executable: `C:\sandgate.exe`}
	base := []string{"PATH=C:\\Windows", "Http_Proxy=http://evil:1", "sandgate_socks_password=old", "NO_PROXY=*", "GIT_PROXY_COMMAND=x"}
	env, err := WithCredentials(base, r)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := lastValue(env, "HTTP_PROXY")
	u, err := url.Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := u.User.Password(); u.User.Username() != "run" || pw != "p@ss:w/rd" || u.Host != "127.0.0.1:47101" || u.Scheme != "http" {
		t.Errorf("HTTP_PROXY = %q", h)
	}
	s, _ := lastValue(env, "ALL_PROXY")
	if su, err := url.Parse(s); err != nil || su.Scheme != "socks5h" || su.Host != "127.0.0.1:47100" || su.User.Username() != "run" {
		t.Errorf("ALL_PROXY = %q", s)
	}
	if v, _ := lastValue(env, "RSYNC_PROXY"); v != "run:p%40ss%3Aw%2Frd@127.0.0.1:47101" {
		t.Errorf("RSYNC_PROXY = %q", v)
	}
	if v, _ := lastValue(env, SOCKSPasswordEnv); v != "p@ss:w/rd" {
		t.Errorf("%s = %q", SOCKSPasswordEnv, v)
	}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "sandgate_socks_password" || k == "GIT_PROXY_COMMAND" || k == "Http_Proxy" {
			t.Errorf("inherited %s kept", kv)
		}
	}
	ports, problems := PortsFromEnv(env)
	if len(problems) > 0 || !slices.Equal(ports, []uint16{47100, 47101}) {
		t.Errorf("PortsFromEnv = %v %v", ports, problems)
	}

	for _, bad := range []CredentialedRun{
		{HTTPPort: 0, SOCKSPort: 1, User: "u", Password: "p"},
		{HTTPPort: 5, SOCKSPort: 5, User: "u", Password: "p"},
		{HTTPPort: 5, SOCKSPort: 6, User: "u"},
		{HTTPPort: 5, SOCKSPort: 6, Password: "p"},
	} {
		if _, err := WithCredentials(base, bad); err == nil {
			t.Errorf("WithCredentials(%+v) accepted", bad)
		}
	}
}

func TestStripCredentials(t *testing.T) {
	in := []string{"A=1", "SANDGATE_SOCKS_USER=u", "Sandgate_Socks_Password=p", "SANDGATE_SOCKS_USERX=keep", "B"}
	if got := StripCredentials(in); !slices.Equal(got, []string{"A=1", "SANDGATE_SOCKS_USERX=keep", "B"}) {
		t.Errorf("StripCredentials = %q", got)
	}
}

func TestNewPassword(t *testing.T) {
	a, err := NewPassword()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewPassword()
	if len(a) != 32 || strings.Trim(a, "0123456789abcdef") != "" || a == b {
		t.Errorf("NewPassword = %q, then %q", a, b)
	}
}

// TestWithCredentialsJavaDirect: with JavaDirect the JVM gets no proxy
// properties (inherited ones are removed, its other options kept), and an
// inherited GIT_HTTP_PROXY_AUTHMETHOD is replaced.
func TestWithCredentialsJavaDirect(t *testing.T) {
	r := CredentialedRun{HTTPPort: 47100, SOCKSPort: 47101, User: "u", Password: "p4ss", JavaDirect: true}
	for _, tc := range []struct {
		base []string
		java string // "" = not set
	}{
		{nil, ""},
		{[]string{"JAVA_TOOL_OPTIONS=-Dhttps.proxyHost=corp -Dhttps.proxyPort=8080"}, ""},
		{[]string{"JAVA_TOOL_OPTIONS=-Xmx1g -Dhttp.proxyHost=corp", "GIT_HTTP_PROXY_AUTHMETHOD=negotiate"}, "-Xmx1g"},
	} {
		env, err := WithCredentials(tc.base, r)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := lastValue(env, "JAVA_TOOL_OPTIONS")
		if tc.java == "" && ok || tc.java != "" && v != tc.java {
			t.Errorf("base %q: JAVA_TOOL_OPTIONS = %q (set %v), want %q", tc.base, v, ok, tc.java)
		}
		n := 0
		for _, kv := range env {
			if strings.HasPrefix(kv, "GIT_HTTP_PROXY_AUTHMETHOD=") {
				n++
				if kv != "GIT_HTTP_PROXY_AUTHMETHOD=basic" {
					t.Errorf("base %q: %s", tc.base, kv)
				}
			}
		}
		if n != 1 {
			t.Errorf("base %q: GIT_HTTP_PROXY_AUTHMETHOD set %d times", tc.base, n)
		}
	}
}

package main

import (
	"strings"
	"testing"

	"github.com/sandgate/sandgate/egress"
)

// TestResolveUpstream: flags win over the file, "env" reads the caller's
// variables, "direct" turns a configured upstream off, and every error
// names where the value came from without repeating a password.
func TestResolveUpstream(t *testing.T) {
	const pw = "hunter2-secret"
	env := map[string]string{"HTTPS_PROXY": "http://carol:" + pw + "@proxy.example.test:8080", "NO_PROXY": "internal.test,10.0.0.0/8"}
	getenv := func(k string) string { return env[k] }
	none := func(string) string { return "" }
	tests := []struct {
		name                          string
		flagProxy, flagSend, cfP, cfS string
		getenv                        func(string) string
		wantAddr, wantUser            string
		wantSend                      egress.UpstreamSend
		wantNoProxy                   int
		wantErr                       string
	}{
		{name: "none", getenv: none},
		{name: "flag url", flagProxy: "http://u:" + pw + "@192.0.2.7:3128", getenv: none, wantAddr: "192.0.2.7:3128", wantUser: "u"},
		{name: "flag wins", flagProxy: "socks5://192.0.2.8:1080", cfP: "http://192.0.2.7:3128", getenv: none, wantAddr: "192.0.2.8:1080"},
		{name: "config", cfP: "http://192.0.2.7:3128", cfS: "address", getenv: none, wantAddr: "192.0.2.7:3128", wantSend: egress.SendAddress},
		{name: "flag send wins", cfP: "http://192.0.2.7:3128", cfS: "address", flagSend: "name", getenv: none, wantAddr: "192.0.2.7:3128", wantSend: egress.SendName},
		{name: "env", flagProxy: "env", getenv: getenv, wantAddr: "proxy.example.test:8080", wantUser: "carol", wantNoProxy: 2},
		{name: "env in config", cfP: "env", flagSend: "address", getenv: getenv, wantAddr: "proxy.example.test:8080", wantUser: "carol", wantSend: egress.SendAddress, wantNoProxy: 2},
		{name: "direct overrides config", flagProxy: "direct", cfP: "http://192.0.2.7:3128", getenv: none},
		{name: "env unset", flagProxy: "env", getenv: none, wantErr: "--upstream-proxy env: none of HTTPS_PROXY"},
		{name: "env bad", flagProxy: "env", getenv: func(k string) string {
			if k == "HTTP_PROXY" {
				return "ftp://x:" + pw + "@192.0.2.1:21"
			}
			return ""
		}, wantErr: "$HTTP_PROXY"},
		{name: "bad url", flagProxy: "http://u:" + pw + "@192.0.2.7", getenv: none, wantErr: "--upstream-proxy: upstream proxy http://192.0.2.7: needs a host and a port"},
		{name: "bad scheme", flagProxy: "https://u:" + pw + "@192.0.2.7:443", getenv: none, wantErr: "--upstream-proxy: upstream proxy scheme"},
		{name: "bad url in config", cfP: "http://u:" + pw + "@192.0.2.7:0", getenv: none, wantErr: "/etc/sg.toml: [proxy] upstream: "},
		{name: "bad send flag", flagProxy: "http://192.0.2.7:3128", flagSend: "ip", getenv: none, wantErr: "--upstream-send: upstream send mode \"ip\""},
		{name: "bad send config", cfP: "http://192.0.2.7:3128", cfS: "ip", getenv: none, wantErr: "[proxy] upstream_send"},
		{name: "send without upstream", flagSend: "address", getenv: none, wantErr: "--upstream-send needs an upstream proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, err := resolveUpstream(tt.flagProxy, tt.flagSend, tt.cfP, tt.cfS, "/etc/sg.toml", tt.getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), pw) {
					t.Errorf("error repeats the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantAddr == "" {
				if up != nil {
					t.Fatalf("upstream = %v, want none", up)
				}
				return
			}
			if up == nil || up.Addr != tt.wantAddr || up.User != tt.wantUser || up.Send != tt.wantSend || len(up.NoProxy) != tt.wantNoProxy {
				t.Fatalf("upstream = %+v, want addr %s user %q send %v %d NO_PROXY entries", up, tt.wantAddr, tt.wantUser, tt.wantSend, tt.wantNoProxy)
			}
			if line := upstreamLine(up); strings.Contains(line, pw) || !strings.Contains(line, up.String()) {
				t.Errorf("upstreamLine = %q: want the upstream without its password", line)
			}
		})
	}
}

// TestUpstreamLineEnv: for --upstream-proxy env the line names the URL
// taken and the variable it came from, and says that plain HTTP goes
// through it too (HTTP_PROXY, set to another proxy, is not used); a URL
// given directly names no variable.
func TestUpstreamLineEnv(t *testing.T) {
	env := map[string]string{"HTTP_PROXY": "http://192.0.2.20:3128", "HTTPS_PROXY": "http://u:pw@192.0.2.21:8080", "NO_PROXY": "corp.test"}
	up, err := resolveUpstream("env", "", "", "", "", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	line := upstreamLine(up)
	for _, want := range []string{"upstream proxy http://192.0.2.21:8080,", "from $HTTPS_PROXY", "plain HTTP and HTTPS alike", "other proxy variables are not used", "1 NO_PROXY entries go direct"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "192.0.2.20") || strings.Contains(line, "pw") {
		t.Errorf("line %q names the unused HTTP_PROXY or the password", line)
	}
	env = map[string]string{"http_proxy": "192.0.2.20:3128"}
	up, err = resolveUpstream("env", "", "", "", "", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if line := upstreamLine(up); !strings.Contains(line, "http://192.0.2.20:3128") || !strings.Contains(line, "from $http_proxy") {
		t.Errorf("http_proxy only: %q", line)
	}
	up, err = resolveUpstream("http://192.0.2.22:3128", "", "", "", "", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if line := upstreamLine(up); strings.Contains(line, "from $") {
		t.Errorf("a URL given directly: %q names a variable", line)
	}
}

// TestUpstreamFlagExitsTwo: a bad --upstream-proxy stops `run` and `proxy`
// with exit 2 naming the flag, and never prints the password.
func TestUpstreamFlagExitsTwo(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, args := range [][]string{
		{"run", "--upstream-proxy", "http://u:pa55word@192.0.2.1:99999", "--", "true"},
		{"proxy", "--upstream-proxy", "gopher://u:pa55word@192.0.2.1:70"},
		{"proxy", "--upstream-send", "sideways", "--upstream-proxy", "192.0.2.1:3128"},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(errOut, "--upstream-") || strings.Contains(errOut, "pa55word") {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming the flag without the password", args, code, errOut)
		}
	}
}

// FuzzResolveUpstream: whatever the flag holds, an error or the
// description never repeats the URL's password.
func FuzzResolveUpstream(f *testing.F) {
	for _, s := range []string{"http://192.0.2.1:3128", "socks5://a:b@192.0.2.1:1080", "env", "direct", "http://[::1]:x", "http://u:%zz@h:1"} {
		f.Add(s, "name")
	}
	f.Fuzz(func(t *testing.T, raw, send string) {
		const pw = "Zq9PASSWORDxY"
		in := raw
		if i := strings.Index(raw, "://"); i >= 0 {
			in = raw[:i+3] + "user:" + pw + "@" + raw[i+3:]
		}
		up, err := resolveUpstream(in, send, "", "", "", func(string) string { return "" })
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Fatalf("error repeats the password: %v", err)
		}
		if up != nil && strings.Contains(upstreamLine(up), pw) {
			t.Fatalf("description repeats the password: %s", upstreamLine(up))
		}
	})
}

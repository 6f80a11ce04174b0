package proxyenv

import (
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

func toMap(t *testing.T, env []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("entry %q has no '='", kv)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("variable %s set twice", k)
		}
		m[k] = v
	}
	return m
}

func TestVarsFull(t *testing.T) {
	got := toMap(t, Vars(Config{
		HTTP:       "http://127.0.0.1:3128",
		SOCKS:      "socks5h://127.0.0.1:1080",
		NoProxy:    DefaultNoProxy,
		Executable: "/usr/local/bin/sandgate",
	}))
	want := map[string]string{
		"HTTP_PROXY": "http://127.0.0.1:3128", "HTTPS_PROXY": "http://127.0.0.1:3128",
		"http_proxy": "http://127.0.0.1:3128", "https_proxy": "http://127.0.0.1:3128",
		"WS_PROXY": "http://127.0.0.1:3128", "WSS_PROXY": "http://127.0.0.1:3128",
		"ws_proxy": "http://127.0.0.1:3128", "wss_proxy": "http://127.0.0.1:3128",
		"npm_config_proxy": "http://127.0.0.1:3128", "npm_config_https_proxy": "http://127.0.0.1:3128",
		"NPM_CONFIG_PROXY": "http://127.0.0.1:3128", "NPM_CONFIG_HTTPS_PROXY": "http://127.0.0.1:3128",
		"YARN_HTTP_PROXY": "http://127.0.0.1:3128", "YARN_HTTPS_PROXY": "http://127.0.0.1:3128",
		"PIP_PROXY":          "http://127.0.0.1:3128",
		"RSYNC_PROXY":        "127.0.0.1:3128",
		"NODE_USE_ENV_PROXY": "1",
		"JAVA_TOOL_OPTIONS":  "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]",
		"ALL_PROXY":          "socks5h://127.0.0.1:1080", "all_proxy": "socks5h://127.0.0.1:1080",
		"GIT_SSH_COMMAND": "ssh -o 'ProxyCommand=/usr/local/bin/sandgate socks-connect 127.0.0.1:1080 %h %p'",
		"NO_PROXY":        "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1",
		"npm_config_noproxy": "localhost,127.0.0.1,::1", "NPM_CONFIG_NOPROXY": "localhost,127.0.0.1,::1",
	}
	if !reflect.DeepEqual(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected %s=%q", k, v)
			}
		}
	}
	// Names lists exactly what Vars can set.
	names := Names()
	sort.Strings(names)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(names, keys) {
		t.Errorf("Names() = %v\nVars keys = %v", names, keys)
	}
	if _, ok := got["YARN_NO_PROXY"]; ok {
		t.Error("YARN_NO_PROXY breaks Yarn Berry and must not be set")
	}
}

func TestVarsPartial(t *testing.T) {
	tests := []struct {
		name    string
		c       Config
		has     []string
		hasNot  []string
		checkKV map[string]string
	}{
		{"empty", Config{}, nil, []string{"HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "GIT_SSH_COMMAND", "JAVA_TOOL_OPTIONS"}, nil},
		{"no proxies but no_proxy", Config{NoProxy: DefaultNoProxy}, nil, []string{"NO_PROXY"}, nil},
		{"http only", Config{HTTP: "http://127.0.0.1:1"}, []string{"HTTP_PROXY", "JAVA_TOOL_OPTIONS"}, []string{"ALL_PROXY", "GIT_SSH_COMMAND", "NO_PROXY"}, nil},
		{"socks without executable", Config{SOCKS: "socks5h://127.0.0.1:2"}, []string{"ALL_PROXY"}, []string{"HTTP_PROXY", "GIT_SSH_COMMAND"}, nil},
		{"ipv6 proxy", Config{HTTP: "http://[::1]:8080", NoProxy: []string{"::1"}}, nil, nil, map[string]string{
			"RSYNC_PROXY":       "[::1]:8080",
			"JAVA_TOOL_OPTIONS": "-Dhttp.proxyHost=[::1] -Dhttp.proxyPort=8080 -Dhttps.proxyHost=[::1] -Dhttps.proxyPort=8080 -Dhttp.nonProxyHosts=[::1]",
		}},
		{"odd executable path", Config{SOCKS: "socks5h://127.0.0.1:9", Executable: "/opt/my tools/50%/it's"}, nil, nil, map[string]string{
			"GIT_SSH_COMMAND": `ssh -o 'ProxyCommand='\''/opt/my tools/50%%/it'\''\'\'''\''s'\'' socks-connect 127.0.0.1:9 %h %p'`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := toMap(t, Vars(tt.c))
			for _, k := range tt.has {
				if _, ok := m[k]; !ok {
					t.Errorf("%s missing", k)
				}
			}
			for _, k := range tt.hasNot {
				if v, ok := m[k]; ok {
					t.Errorf("%s=%q set, want unset", k, v)
				}
			}
			for k, v := range tt.checkKV {
				if m[k] != v {
					t.Errorf("%s = %q, want %q", k, m[k], v)
				}
			}
		})
	}
}

// TestSSHCommandShellRoundTrip checks the two levels of quoting by undoing
// them with a tiny POSIX-quote reader.
func TestSSHCommandShellRoundTrip(t *testing.T) {
	for _, exe := range []string{"/usr/bin/sandgate", "/opt/my tools/sandgate", "/x/it's", "/p/100%/sg", `/q/"dq"/$HOME`} {
		cmd := SSHCommand(exe, "127.0.0.1:1080")
		outer := shellWords(t, cmd)
		if len(outer) != 3 || outer[0] != "ssh" || outer[1] != "-o" || !strings.HasPrefix(outer[2], "ProxyCommand=") {
			t.Fatalf("%q: outer words %q", cmd, outer)
		}
		pc := strings.TrimPrefix(outer[2], "ProxyCommand=")
		// ssh turns %% into %, then hands the line to a shell.
		inner := shellWords(t, strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(pc, "%h", "H"), "%p", "P"), "%%", "%"))
		want := []string{exe, "socks-connect", "127.0.0.1:1080", "H", "P"}
		if !reflect.DeepEqual(inner, want) {
			t.Errorf("%q: inner words %q, want %q", cmd, inner, want)
		}
	}
}

// shellWords splits s like a POSIX shell for the quoting shellQuote emits
// (single quotes, backslash outside quotes, blanks).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	in, inSingle := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inSingle:
			if c == '\'' {
				inSingle = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'':
			inSingle, in = true, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case strings.IndexByte("\"$`", c) >= 0:
			t.Fatalf("unquoted shell metacharacter %q in %q", c, s)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if inSingle {
		t.Fatalf("unterminated quote in %q", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

func TestMerge(t *testing.T) {
	base := []string{
		"PATH=/usr/bin",
		"HTTP_PROXY=http://corp:8080",
		"https_proxy=http://corp:8080",
		"Https_Proxy=http://corp:8080",
		"all_proxy=socks5://corp:1080",
		"NO_PROXY=internal.corp",
		"FTP_PROXY=http://corp:21",
		"GRPC_PROXY=http://corp:1",
		"GIT_PROXY_COMMAND=/usr/bin/corkscrew",
		"GIT_SSH_COMMAND=ssh -i key",
		"npm_config_noproxy=x",
		"npm_config_https_proxy=http://corp",
		"NODE_USE_ENV_PROXY=0",
		"YARN_NO_PROXY=x",
		"HOME=/root",
		"JAVA_TOOL_OPTIONS=-Xmx1g -Dhttp.proxyHost=corp \"-Dfoo=a b\" -Dhttps.proxyPort=1 -DsocksProxyHost=corp",
		"NOEQUALS",
		"EDITOR=vi",
	}
	orig := slices.Clone(base)
	vars := Vars(Config{HTTP: "http://127.0.0.1:1", SOCKS: "socks5h://127.0.0.1:2", NoProxy: DefaultNoProxy})
	got := Merge(base, vars)
	if !reflect.DeepEqual(base, orig) {
		t.Fatal("Merge modified base")
	}
	m := toMap(t, got)
	for _, k := range []string{"PATH", "HOME", "EDITOR"} {
		if m[k] == "" {
			t.Errorf("%s dropped", k)
		}
	}
	for _, k := range []string{"Https_Proxy", "FTP_PROXY", "GRPC_PROXY", "GIT_PROXY_COMMAND", "YARN_NO_PROXY", "GIT_SSH_COMMAND", "NOEQUALS"} {
		if v, ok := m[k]; ok {
			t.Errorf("inherited %s=%q kept", k, v)
		}
	}
	if m["HTTP_PROXY"] != "http://127.0.0.1:1" || m["https_proxy"] != "http://127.0.0.1:1" || m["all_proxy"] != "socks5h://127.0.0.1:2" ||
		m["NO_PROXY"] != "localhost,127.0.0.1,::1" || m["NODE_USE_ENV_PROXY"] != "1" || m["npm_config_noproxy"] != "localhost,127.0.0.1,::1" {
		t.Errorf("proxy variables not replaced: %v", m)
	}
	wantJava := `-Xmx1g "-Dfoo=a b" -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=1 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=1 -Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]`
	if m["JAVA_TOOL_OPTIONS"] != wantJava {
		t.Errorf("JAVA_TOOL_OPTIONS = %q\nwant %q", m["JAVA_TOOL_OPTIONS"], wantJava)
	}
}

func TestMergeRemoveOnly(t *testing.T) {
	tests := []struct {
		base, want []string
	}{
		{nil, []string{}},
		{[]string{"A=1", "http_proxy=x", "B=2"}, []string{"A=1", "B=2"}},
		{[]string{"JAVA_TOOL_OPTIONS=-Dhttp.proxyPort=1"}, []string{}},
		{[]string{"JAVA_TOOL_OPTIONS=-Xss2m '-Dhttps.proxyHost=x'"}, []string{"JAVA_TOOL_OPTIONS=-Xss2m"}},
		{[]string{"JAVA_TOOL_OPTIONS="}, []string{}},
		{[]string{"A=b=c", "PROXY=1", "myproxy=2"}, []string{"A=b=c"}},
	}
	for _, tt := range tests {
		got := Merge(tt.base, nil)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Merge(%q, nil) = %q, want %q", tt.base, got, tt.want)
		}
	}
}

func TestPortsFromEnv(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		ports    []uint16
		problems []string // substrings, in order
	}{
		{"none", []string{"PATH=/bin"}, nil, nil},
		{"typical", []string{"HTTP_PROXY=http://127.0.0.1:3128", "HTTPS_PROXY=http://127.0.0.1:3128", "ALL_PROXY=socks5h://localhost:1080"}, []uint16{1080, 3128}, nil},
		{"lower case and ws", []string{"http_proxy=http://127.0.0.1:9", "wss_proxy=http://[::1]:7", "ws_proxy=http://LOCALHOST:8", "all_proxy=socks5://127.0.0.1:6"}, []uint16{6, 7, 8, 9}, nil},
		{"credentials ignored", []string{"HTTPS_PROXY=http://user:p%40ss@127.0.0.1:8080"}, []uint16{8080}, nil},
		{"sorted and deduplicated", []string{"HTTPS_PROXY=http://127.0.0.1:5", "HTTP_PROXY=http://localhost:5", "ALL_PROXY=socks5h://[::1]:2"}, []uint16{2, 5}, nil},
		{"empty value ignored", []string{"HTTP_PROXY="}, nil, nil},
		{"other variables ignored", []string{"FTP_PROXY=http://10.0.0.1", "NO_PROXY=localhost", "Http_Proxy=http://192.0.2.1:1"}, nil, nil},
		{"non-loopback", []string{"HTTP_PROXY=http://192.0.2.1:3128"}, nil, []string{"HTTP_PROXY: proxy host \"192.0.2.1\" is not loopback"}},
		{"other loopback address", []string{"HTTP_PROXY=http://127.0.0.2:3128"}, nil, []string{"HTTP_PROXY: proxy host \"127.0.0.2\""}},
		{"no port", []string{"https_proxy=http://127.0.0.1"}, nil, []string{"https_proxy: no explicit port"}},
		{"empty port", []string{"https_proxy=http://127.0.0.1:"}, nil, []string{"https_proxy: no explicit port"}},
		{"zero port", []string{"ALL_PROXY=socks5h://127.0.0.1:0"}, nil, []string{"ALL_PROXY: invalid port \"0\""}},
		{"huge port", []string{"ALL_PROXY=socks5h://127.0.0.1:65536"}, nil, []string{"ALL_PROXY: invalid port"}},
		{"no scheme", []string{"HTTP_PROXY=127.0.0.1:3128"}, nil, []string{"HTTP_PROXY: not a valid URL"}},
		{"no scheme localhost", []string{"HTTP_PROXY=localhost:3128"}, nil, []string{"HTTP_PROXY: not a URL with a scheme and host"}},
		{"path only", []string{"HTTP_PROXY=/tmp/sock"}, nil, []string{"HTTP_PROXY: not a URL with a scheme and host"}},
		{"unbracketed v6", []string{"HTTP_PROXY=http://::1:3128"}, nil, []string{"HTTP_PROXY:"}},
		{"password not echoed", []string{"HTTP_PROXY=http://u:secret@192.0.2.7"}, nil, []string{"HTTP_PROXY: proxy host \"192.0.2.7\""}},
		{"loopback name trick", []string{"HTTP_PROXY=http://127.0.0.1.evil.test:1"}, nil, []string{"not loopback"}},
		{"mixed", []string{"HTTP_PROXY=http://127.0.0.1:1", "HTTPS_PROXY=http://203.0.113.5:2"}, []uint16{1}, []string{"HTTPS_PROXY:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ports, problems := PortsFromEnv(tt.env)
			if !reflect.DeepEqual(ports, tt.ports) {
				t.Errorf("ports = %v, want %v", ports, tt.ports)
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems = %q, want %d like %q", problems, len(tt.problems), tt.problems)
			}
			for i, p := range problems {
				if !strings.Contains(p, tt.problems[i]) {
					t.Errorf("problem %q does not contain %q", p, tt.problems[i])
				}
				if strings.Contains(p, "secret") {
					t.Errorf("problem %q leaks a password", p)
				}
			}
		})
	}
}

func FuzzPortsFromEnv(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:3128", "socks5h://[::1]:1", "http://u:p@localhost:80", "127.0.0.1:1", "http://192.0.2.1:5", "", "http://[::1]", "x://localhost:0"} {
		f.Add("HTTP_PROXY", s)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		ports, problems := PortsFromEnv([]string{key + "=" + value, "all_proxy=" + value})
		if !sort.SliceIsSorted(ports, func(i, j int) bool { return ports[i] < ports[j] }) {
			t.Fatalf("ports not sorted: %v", ports)
		}
		for i, p := range ports {
			if p == 0 {
				t.Fatal("port 0 returned")
			}
			if i > 0 && ports[i-1] == p {
				t.Fatalf("duplicate port %d", p)
			}
		}
		if len(ports) > 0 {
			// A port is only ever taken from a URL whose host is loopback.
			u, err := url.Parse(value)
			if err != nil {
				t.Fatalf("port from unparsable %q", value)
			}
			switch strings.ToLower(u.Hostname()) {
			case "localhost", "127.0.0.1", "::1":
			default:
				t.Fatalf("port from non-loopback %q", value)
			}
		}
		if len(ports) == 0 && value != "" && len(problems) == 0 {
			t.Fatalf("value %q gave neither a port nor a problem", value)
		}
		for _, p := range problems {
			if !strings.Contains(p, ":") {
				t.Fatalf("problem %q does not name its variable", p)
			}
		}
	})
}

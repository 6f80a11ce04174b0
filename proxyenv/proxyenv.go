// Package proxyenv builds the proxy environment variables given to a command
// that must reach the network through sandgate's proxies, removes the proxy
// variables it would otherwise inherit, and reads loopback proxy ports back
// out of an environment.
//
// The variables cover the conventional names (HTTP_PROXY, HTTPS_PROXY,
// ALL_PROXY, NO_PROXY and their lower-case forms) plus the names that common
// tools read instead of, or in addition to, the conventional ones: npm, Yarn
// (classic and Berry), pip, Node.js, rsync, git over ssh and the JVM. Tools
// that only read the conventional names (curl, wget, Go, Python, Ruby and
// Bundler, Cargo, the Docker CLI and buildx, gRPC) need nothing more.
package proxyenv

import (
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/sandgate/sandgate/policy"
)

// DefaultNoProxy is the NO_PROXY list for a sandbox whose loopback interface
// is its own: local destinations are reached directly, not through the proxy.
var DefaultNoProxy = []string{"localhost", "127.0.0.1", "::1"}

// Config says which proxies a command should use.
type Config struct {
	// HTTP is the HTTP proxy URL, e.g. "http://127.0.0.1:3128". Empty: none
	// of the HTTP proxy variables are set.
	HTTP string
	// SOCKS is the SOCKS5 proxy URL with remote name resolution, e.g.
	// "socks5h://127.0.0.1:1080". Empty: none of the SOCKS variables are set.
	SOCKS string
	// NoProxy lists destinations reached without a proxy (NO_PROXY).
	NoProxy []string
	// Executable is the path of the sandgate binary. When it and SOCKS are
	// set, GIT_SSH_COMMAND makes ssh connect through the SOCKS proxy with
	// `sandgate socks-connect HOST:PORT %h %p` as its ProxyCommand.
	Executable string
}

// Names of every variable Vars may set, in the order Vars sets them.
var names = []string{
	"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
	"WS_PROXY", "WSS_PROXY", "ws_proxy", "wss_proxy",
	"npm_config_proxy", "npm_config_https_proxy", "NPM_CONFIG_PROXY", "NPM_CONFIG_HTTPS_PROXY",
	"YARN_HTTP_PROXY", "YARN_HTTPS_PROXY",
	"PIP_PROXY",
	"RSYNC_PROXY",
	"NODE_USE_ENV_PROXY",
	"JAVA_TOOL_OPTIONS",
	"ALL_PROXY", "all_proxy",
	"GIT_SSH_COMMAND",
	"NO_PROXY", "no_proxy", "npm_config_noproxy", "NPM_CONFIG_NOPROXY",
}

// Names returns the names of every variable Vars may set (a fresh copy).
func Names() []string { return append([]string(nil), names...) }

// Vars returns the KEY=VALUE entries that point a command at the proxies in c.
//
//   - HTTP_PROXY, HTTPS_PROXY, http_proxy, https_proxy, WS_PROXY, WSS_PROXY,
//     ws_proxy, wss_proxy, npm_config_proxy, npm_config_https_proxy,
//     NPM_CONFIG_PROXY, NPM_CONFIG_HTTPS_PROXY, YARN_HTTP_PROXY,
//     YARN_HTTPS_PROXY (Yarn Berry's httpProxy/httpsProxy; Yarn classic reads
//     the npm_config_ ones), PIP_PROXY: the HTTP proxy URL.
//   - RSYNC_PROXY: the HTTP proxy as host:port (rsync tunnels with CONNECT).
//   - NODE_USE_ENV_PROXY=1: Node.js 22.21+/24.5+ honour the variables above.
//   - JAVA_TOOL_OPTIONS: -Dhttp.proxyHost/-Dhttp.proxyPort,
//     -Dhttps.proxyHost/-Dhttps.proxyPort and -Dhttp.nonProxyHosts.
//     Merge keeps the caller's other JVM options.
//   - ALL_PROXY, all_proxy: the SOCKS URL.
//   - GIT_SSH_COMMAND: ssh with a ProxyCommand through the SOCKS proxy
//     (when c.Executable is set).
//   - NO_PROXY, no_proxy, npm_config_noproxy, NPM_CONFIG_NOPROXY: c.NoProxy
//     joined with commas (when non-empty).
//
// YARN_NO_PROXY is deliberately not set: Yarn Berry rejects it as an unknown
// setting.
func Vars(c Config) []string {
	var out []string
	set := func(k, v string) { out = append(out, k+"="+v) }
	if c.HTTP != "" {
		for _, k := range []string{
			"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
			"WS_PROXY", "WSS_PROXY", "ws_proxy", "wss_proxy",
			"npm_config_proxy", "npm_config_https_proxy", "NPM_CONFIG_PROXY", "NPM_CONFIG_HTTPS_PROXY",
			"YARN_HTTP_PROXY", "YARN_HTTPS_PROXY",
			"PIP_PROXY",
		} {
			set(k, c.HTTP)
		}
		if host, port, ok := hostPort(c.HTTP); ok {
			set("RSYNC_PROXY", net.JoinHostPort(host, port))
		}
		set("NODE_USE_ENV_PROXY", "1")
		if opts := javaOptions(c.HTTP, c.NoProxy); opts != "" {
			set("JAVA_TOOL_OPTIONS", opts)
		}
	}
	if c.SOCKS != "" {
		set("ALL_PROXY", c.SOCKS)
		set("all_proxy", c.SOCKS)
		if c.Executable != "" {
			if host, port, ok := hostPort(c.SOCKS); ok {
				set("GIT_SSH_COMMAND", SSHCommand(c.Executable, net.JoinHostPort(host, port)))
			}
		}
	}
	if len(c.NoProxy) > 0 && (c.HTTP != "" || c.SOCKS != "") {
		v := strings.Join(c.NoProxy, ",")
		for _, k := range noProxyNames {
			set(k, v)
		}
	}
	return out
}

// SSHCommand returns a GIT_SSH_COMMAND value that runs ssh with
// `EXE socks-connect SOCKSADDR %h %p` as its ProxyCommand. The executable path
// is quoted for the shell that ssh starts the ProxyCommand with, and the whole
// option again for the shell git runs GIT_SSH_COMMAND with.
func SSHCommand(executable, socksAddr string) string {
	// ssh expands %-tokens in ProxyCommand; a literal % is written %%.
	exe := strings.ReplaceAll(shellQuote(executable), "%", "%%")
	addr := strings.ReplaceAll(shellQuote(socksAddr), "%", "%%")
	return "ssh -o " + shellQuote("ProxyCommand="+exe+" socks-connect "+addr+" %h %p")
}

// shellQuote returns s unchanged when a POSIX shell would read it as one
// word as is, otherwise s in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("_-./:@%+=,[]", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// hostPort returns the host (without brackets) and port of a proxy URL.
func hostPort(raw string) (host, port string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Port() == "" {
		return "", "", false
	}
	return u.Hostname(), u.Port(), true
}

// javaOptions returns the JVM system properties that select the HTTP proxy.
func javaOptions(httpURL string, noProxy []string) string {
	host, port, ok := hostPort(httpURL)
	if !ok {
		return ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	opts := []string{
		"-Dhttp.proxyHost=" + host, "-Dhttp.proxyPort=" + port,
		"-Dhttps.proxyHost=" + host, "-Dhttps.proxyPort=" + port,
	}
	var hosts []string
	for _, h := range noProxy {
		if h == "" || strings.ContainsAny(h, " \t\"'") {
			continue
		}
		if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
			h = "[" + h + "]"
		}
		hosts = append(hosts, h)
	}
	if len(hosts) > 0 {
		opts = append(opts, "-Dhttp.nonProxyHosts="+strings.Join(hosts, "|"))
	}
	return strings.Join(opts, " ")
}

// javaProxyProps are the JVM system property prefixes Merge strips from an
// inherited JAVA_TOOL_OPTIONS.
var javaProxyProps = []string{
	"-Dhttp.proxyHost=", "-Dhttp.proxyPort=", "-Dhttp.proxyUser=", "-Dhttp.proxyPassword=",
	"-Dhttps.proxyHost=", "-Dhttps.proxyPort=", "-Dhttps.proxyUser=", "-Dhttps.proxyPassword=",
	"-Dhttp.nonProxyHosts=", "-DsocksProxyHost=", "-DsocksProxyPort=", "-DsocksProxyVersion=",
	"-DsocksNonProxyHosts=", "-Djava.net.socks.username=", "-Djava.net.socks.password=",
	"-Djava.net.useSystemProxies=", "-Dftp.proxyHost=", "-Dftp.proxyPort=", "-Dftp.nonProxyHosts=",
}

// IsProxyVar reports whether Merge treats the variable name as proxy
// configuration: any name containing "proxy" in any case, or one of Names()
// other than JAVA_TOOL_OPTIONS (whose non-proxy options Merge keeps).
func IsProxyVar(name string) bool {
	if strings.Contains(strings.ToLower(name), "proxy") {
		return true
	}
	for _, n := range names {
		if n != "JAVA_TOOL_OPTIONS" && strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// Merge returns base without any inherited proxy configuration, followed by
// vars: proxy settings are replaced, never merged. It removes every entry
// whose name IsProxyVar (case-insensitively: HTTP_PROXY, http_proxy,
// GIT_SSH_COMMAND, npm_config_noproxy, GIT_PROXY_COMMAND, ...). An inherited
// JAVA_TOOL_OPTIONS keeps its options other than proxy system properties,
// and the JAVA_TOOL_OPTIONS of vars is appended to them. Entries without
// "=" are dropped. base is not modified.
func Merge(base []string, vars []string) []string {
	var javaVar string
	out := make([]string, 0, len(base)+len(vars))
	for _, kv := range vars {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "JAVA_TOOL_OPTIONS" {
			javaVar = v
		}
	}
	var javaBase []string
	haveJava := false
	for _, kv := range base {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || IsProxyVar(k) {
			continue
		}
		if k == "JAVA_TOOL_OPTIONS" {
			haveJava = true
			javaBase = append(javaBase[:0], stripJavaProxy(v)...)
			continue
		}
		out = append(out, kv)
	}
	for _, kv := range vars {
		if k, _, ok := strings.Cut(kv, "="); ok && k == "JAVA_TOOL_OPTIONS" {
			continue
		}
		out = append(out, kv)
	}
	if haveJava || javaVar != "" {
		opts := javaBase
		if javaVar != "" {
			opts = append(opts, javaVar)
		}
		if len(opts) > 0 {
			out = append(out, "JAVA_TOOL_OPTIONS="+strings.Join(opts, " "))
		}
	}
	return out
}

// stripJavaProxy splits JVM options at unquoted white space (the way the JVM
// does) and returns those that do not set a proxy property.
func stripJavaProxy(v string) []string {
	var keep []string
	for _, tok := range splitJavaOptions(v) {
		bare := strings.ReplaceAll(strings.ReplaceAll(tok, `"`, ""), `'`, "")
		drop := false
		for _, p := range javaProxyProps {
			if strings.HasPrefix(bare, p) {
				drop = true
				break
			}
		}
		if !drop {
			keep = append(keep, tok)
		}
	}
	return keep
}

// splitJavaOptions splits at white space outside single or double quotes,
// keeping the quotes in the tokens.
func splitJavaOptions(v string) []string {
	var toks []string
	var cur strings.Builder
	var quote rune
	for _, r := range v {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote = r
			cur.WriteRune(r)
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if cur.Len() > 0 {
				toks = append(toks, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		toks = append(toks, cur.String())
	}
	return toks
}

// portVars are the variables PortsFromEnv reads, upper case; the lower-case
// forms are read too.
var portVars = []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY"}

// PortsFromEnv returns the loopback ports of the proxies named in env's
// HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, WS_PROXY and WSS_PROXY (upper or lower
// case), sorted and without duplicates. Only URLs with a scheme, a loopback
// host (localhost, 127.0.0.1 or [::1]) and an explicit non-zero port count;
// user:password is ignored. Every other non-empty value yields no port and a
// problem naming the variable. Empty values are ignored.
func PortsFromEnv(env []string) (ports []uint16, problems []string) {
	seen := map[uint16]bool{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !isPortVar(k) || v == "" {
			continue
		}
		port, problem := loopbackPort(v)
		if problem != "" {
			problems = append(problems, k+": "+problem)
			continue
		}
		if !seen[port] {
			seen[port] = true
			ports = append(ports, port)
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	return ports, problems
}

func isPortVar(k string) bool {
	for _, n := range portVars {
		if k == n || k == strings.ToLower(n) {
			return true
		}
	}
	return false
}

// loopbackPort returns the port of a loopback proxy URL, or why it is not one.
func loopbackPort(v string) (uint16, string) {
	u, err := url.Parse(v)
	if err != nil {
		// The value is not echoed: it may hold a password.
		return 0, "not a valid URL"
	}
	if u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return 0, "not a URL with a scheme and host (" + quoteShort(redact(u)) + ")"
	}
	host := strings.ToLower(u.Hostname())
	switch host {
	case "localhost", "127.0.0.1":
	case "::1":
		if !strings.HasPrefix(u.Host, "[") {
			return 0, "IPv6 host not in brackets (" + quoteShort(redact(u)) + ")"
		}
	default:
		return 0, "proxy host " + quoteShort(u.Hostname()) + " is not loopback (localhost, 127.0.0.1 or [::1])"
	}
	p := u.Port()
	if p == "" {
		return 0, "no explicit port in " + quoteShort(redact(u))
	}
	n, err := policy.ParsePort(p)
	if err != nil {
		return 0, "invalid port " + quoteShort(p)
	}
	return n, ""
}

// redact returns u without its password.
func redact(u *url.URL) string { return u.Redacted() }

// quoteShort quotes s for a message, cut to a sane length.
func quoteShort(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}

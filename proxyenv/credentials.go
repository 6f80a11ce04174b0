package proxyenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Variables carrying a run's SOCKS credentials to `sandgate socks-connect`
// (the ProxyCommand of GIT_SSH_COMMAND), which cannot take them from a URL.
const (
	SOCKSUserEnv     = "SANDGATE_SOCKS_USER"
	SOCKSPasswordEnv = "SANDGATE_SOCKS_PASSWORD"
)

// CredentialsUser is the user name of every run's proxy credentials (the
// password is what is secret).
const CredentialsUser = "sandgate"

// NewPassword returns a random password for one run's proxy credentials:
// 128 bits as 32 hexadecimal digits.
func NewPassword() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating proxy credentials: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// noProxyNames are the NO_PROXY spellings Vars sets, and CredentialedRun
// sets empty when local binding is not allowed.
var noProxyNames = []string{"NO_PROXY", "no_proxy", "npm_config_noproxy", "NPM_CONFIG_NOPROXY"}

// CredentialedRun describes the proxies of one run whose proxy asks for
// per-run credentials: an identity run, whose sandbox user shares the
// host's loopback with every other local user, so the proxy must know its
// client.
type CredentialedRun struct {
	HTTPPort, SOCKSPort uint16 // loopback ports sandgate serves the run on (127.0.0.1)
	User, Password      string // the run's proxy credentials
	// AllowLocalBinding keeps the usual NO_PROXY (DefaultNoProxy);
	// otherwise NO_PROXY and its kin are set empty, because the loopback
	// is the host's and local destinations must go through the policy too.
	AllowLocalBinding bool
	Executable        string // sandgate's path, for GIT_SSH_COMMAND ("" = not set)
	// JavaDirect leaves the JVM's proxy properties out of
	// JAVA_TOOL_OPTIONS (inherited ones are still removed): the JDK's
	// HTTP clients can send proxy credentials only from code (an
	// Authenticator), never from properties, so pointed at the proxy they
	// get 407. Set it when the run's transparent path decides the JVM's
	// direct connections by the same policy instead.
	JavaDirect bool
}

// GitProxyAuthMethod is the GIT_HTTP_PROXY_AUTHMETHOD of a credentialed
// run: git (libcurl) then sends the credentials of the proxy URL with its
// first request instead of waiting for a 407 challenge.
const GitProxyAuthMethod = "basic"

// URLs returns the run's HTTP and SOCKS5 proxy URLs with the credentials
// as URL userinfo (escaped as RFC 3986 requires).
func (r CredentialedRun) URLs() (httpURL, socksURL string) {
	ui := url.UserPassword(r.User, r.Password)
	h := url.URL{Scheme: "http", User: ui, Host: r.httpHost()}
	s := url.URL{Scheme: "socks5h", User: ui, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(r.SOCKSPort)))}
	return h.String(), s.String()
}

func (r CredentialedRun) httpHost() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(r.HTTPPort)))
}

// check refuses a run without two distinct ports or without credentials.
func (r CredentialedRun) check() error {
	if r.HTTPPort == 0 || r.SOCKSPort == 0 || r.HTTPPort == r.SOCKSPort {
		return fmt.Errorf("identity run needs two distinct proxy ports, got %d and %d", r.HTTPPort, r.SOCKSPort)
	}
	if r.User == "" || r.Password == "" {
		return errors.New("identity run needs per-run proxy credentials")
	}
	return nil
}

// Vars returns the KEY=VALUE entries of the run: those of Vars (package
// function) for its two URLs, with the credentials in the URLs and in
// RSYNC_PROXY (user:password@host:port, userinfo escaped as in the URLs),
// without JAVA_TOOL_OPTIONS when JavaDirect, GIT_HTTP_PROXY_AUTHMETHOD
// (GitProxyAuthMethod), NO_PROXY and its kin set empty unless
// AllowLocalBinding, and SOCKSUserEnv and SOCKSPasswordEnv (unescaped).
func (r CredentialedRun) Vars() ([]string, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	h, s := r.URLs()
	c := Config{HTTP: h, SOCKS: s, Executable: r.Executable}
	if r.AllowLocalBinding {
		c.NoProxy = DefaultNoProxy
	}
	vars := Vars(c)
	if r.JavaDirect {
		vars = slices.DeleteFunc(vars, func(kv string) bool { return strings.HasPrefix(kv, "JAVA_TOOL_OPTIONS=") })
	}
	vars = append(vars, "GIT_HTTP_PROXY_AUTHMETHOD="+GitProxyAuthMethod)
	rsync := "RSYNC_PROXY=" + url.UserPassword(r.User, r.Password).String() + "@" + r.httpHost()
	for i, kv := range vars {
		// rsync takes the credentials as user:password@host:port.
		if strings.HasPrefix(kv, "RSYNC_PROXY=") {
			vars[i] = rsync
		}
	}
	if !r.AllowLocalBinding {
		for _, n := range noProxyNames {
			vars = append(vars, n+"=")
		}
	}
	return append(vars, SOCKSUserEnv+"="+r.User, SOCKSPasswordEnv+"="+r.Password), nil
}

// WithCredentials returns the environment of a credentialed run: base
// without any inherited proxy configuration (Merge) and without inherited
// SOCKSUserEnv and SOCKSPasswordEnv (StripCredentials), followed by
// r.Vars(). It checks its own output: the loopback proxy ports named in it
// must be exactly the run's two ports.
func WithCredentials(base []string, r CredentialedRun) ([]string, error) {
	vars, err := r.Vars()
	if err != nil {
		return nil, err
	}
	env := Merge(StripCredentials(base), vars)
	got, problems := PortsFromEnv(env)
	want := []uint16{min(r.HTTPPort, r.SOCKSPort), max(r.HTTPPort, r.SOCKSPort)}
	if len(problems) > 0 || !slices.Equal(got, want) {
		return nil, fmt.Errorf("internal error: the run's proxy environment names ports %v (%s), want %v", got, strings.Join(problems, "; "), want)
	}
	return env, nil
}

// StripCredentials returns env without SOCKSUserEnv and SOCKSPasswordEnv
// (names compared without regard to case, as Windows does): a command
// never inherits another run's credentials. env is not modified.
func StripCredentials(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.EqualFold(k, SOCKSUserEnv) || strings.EqualFold(k, SOCKSPasswordEnv) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

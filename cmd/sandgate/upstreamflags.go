package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sandgate/sandgate/config"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// upstreamFlags are --upstream-proxy and --upstream-send, shared by `run`
// and `proxy`. The flags win over the configuration's [proxy] upstream and
// upstream_send.
type upstreamFlags struct {
	proxy string
	send  string
}

func (u *upstreamFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&u.proxy, "upstream-proxy", "", "connect through this proxy once the policy allows a destination: http://[user:pass@]host:port, socks5://…, \"env\" for the first set of your own HTTPS_PROXY, ALL_PROXY, HTTP_PROXY (for every connection, plain HTTP too) and NO_PROXY, or \"direct\" to ignore [proxy] upstream")
	fs.StringVar(&u.send, "upstream-send", "", "what the upstream proxy is asked for: \"name\" (default: it resolves, so sandgate's resolved-address check does not run) or \"address\" (sandgate resolves and checks, then sends the address)")
}

// gate is newGate's gate for cf and pol with the upstream of the flags
// and cf (apply).
func (u *upstreamFlags) gate(cf *config.File, pol *policy.Policy) (*egress.Gate, error) {
	g := newGate(cf, pol)
	if err := u.apply(cf, g); err != nil {
		return nil, err
	}
	return g, nil
}

// apply sets g.Upstream from the flags and cf. Every failure is a usage
// error (exit 2) that names the flag or key and never the credentials.
func (u *upstreamFlags) apply(cf *config.File, g *egress.Gate) error {
	up, err := resolveUpstream(u.proxy, u.send, cf.Proxy.Upstream, cf.Proxy.UpstreamSend, cf.Path, os.Getenv)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	g.Upstream = up
	return nil
}

// resolveUpstream is apply's pure part: flag values first, then the
// configuration file's (read from cfPath), with getenv for "env". It
// returns nil for a direct connection.
func resolveUpstream(flagProxy, flagSend, cfProxy, cfSend, cfPath string, getenv func(string) string) (*egress.Upstream, error) {
	raw, from := strings.TrimSpace(flagProxy), "--upstream-proxy"
	if raw == "" {
		raw, from = strings.TrimSpace(cfProxy), cfgWhere(cfPath, "upstream")
	}
	sendRaw, sendFrom := strings.TrimSpace(flagSend), "--upstream-send"
	if sendRaw == "" {
		sendRaw, sendFrom = strings.TrimSpace(cfSend), cfgWhere(cfPath, "upstream_send")
	}
	send, err := egress.ParseUpstreamSend(sendRaw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sendFrom, err)
	}
	var up *egress.Upstream
	switch strings.ToLower(raw) {
	case "", "direct":
		if flagSend != "" && raw == "" {
			return nil, errors.New("--upstream-send needs an upstream proxy: give --upstream-proxy URL (or env), or [proxy] upstream in the configuration")
		}
		return nil, nil
	case "env":
		up, err = egress.UpstreamFromEnv(getenv)
		if err != nil {
			return nil, fmt.Errorf("%s env: %w", from, err)
		}
		if up == nil {
			return nil, fmt.Errorf("%s env: none of HTTPS_PROXY, ALL_PROXY, HTTP_PROXY (or their lower-case forms) is set in sandgate's environment; give the URL instead", from)
		}
	default:
		up, err = egress.ParseUpstream(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
	}
	up.Send = send
	return up, nil
}

// cfgWhere names a [proxy] key of the configuration file at path.
func cfgWhere(path, key string) string {
	if path == "" {
		return "[proxy] " + key
	}
	return path + ": [proxy] " + key
}

// upstreamLine describes the upstream for sandgate's own messages, without
// credentials; "" when there is none.
func upstreamLine(up *egress.Upstream) string {
	if up == nil {
		return ""
	}
	mode := "by host name: the upstream resolves"
	if up.Send == egress.SendAddress {
		mode = "by the address sandgate resolved and checked"
	}
	line := fmt.Sprintf("allowed destinations are reached through upstream proxy %s, %s", up, mode)
	if up.From != "" {
		// One upstream for everything, whichever variable named it: a
		// reader used to HTTP_PROXY for http:// and HTTPS_PROXY for
		// https:// must not think their traffic is split.
		line += fmt.Sprintf(" (from $%s, the first set of HTTPS_PROXY, ALL_PROXY, HTTP_PROXY: it carries every allowed connection, plain HTTP and HTTPS alike, and the other proxy variables are not used)", up.From)
	}
	if len(up.NoProxy) > 0 {
		line += fmt.Sprintf("; %d NO_PROXY entries go direct", len(up.NoProxy))
	}
	return line
}

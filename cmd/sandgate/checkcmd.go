package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

func newCheckCmd() *cobra.Command {
	var pf policyFlags
	cmd := &cobra.Command{
		Use:   "check [flags] TARGET",
		Short: "Say whether the policy allows TARGET (a URL or HOST[:PORT]) and why",
		Long: `Decide TARGET exactly as the proxy would: the name is checked against the
deny and allow entries before any DNS lookup, an allowed name is resolved
once, and every address in a denied class is dropped. Nothing is dialled.

TARGET is a URL (https://example.com/x, port from the scheme when absent) or
HOST[:PORT] (port 443 when absent).

Exit status: 0 allowed, 1 refused, 3 allowed by an entry but the name does
not resolve from here (so a connection would fail with "resolve-failed").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, port, err := parseCheckTarget(args[0])
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			cf, pol, _, err := pf.load(false)
			if err != nil {
				return err
			}
			gate := newGate(cf, pol)
			if checkResolver != nil {
				gate.Resolver = checkResolver
			}
			res := gate.Decide(context.Background(), host, port)
			out := cmd.OutOrStdout()
			d := res.Decision
			shown := res.Target.Host
			if shown == "" {
				shown = host
			}
			target := net.JoinHostPort(shown, strconv.Itoa(int(port)))
			if d.Allow {
				addrs := make([]string, len(res.Addrs))
				for i, a := range res.Addrs {
					addrs[i] = a.String()
				}
				fmt.Fprintf(out, "allow %s (%s)", target, d.Reason)
				if d.Entry != "" {
					fmt.Fprintf(out, " by entry %q", d.Entry)
				}
				if len(addrs) > 0 {
					fmt.Fprintf(out, "; would dial %s", strings.Join(addrs, ", "))
				}
				fmt.Fprintln(out)
				return nil
			}
			if d.Reason == policy.ReasonResolveFailed {
				if nd := pol.CheckTarget(res.Target); nd.Allow {
					fmt.Fprintln(out, unresolvedLine(nd.Entry, shown, d.Text))
					return &exitError{code: exitUnresolved}
				}
			}
			fmt.Fprintf(out, "deny %s (%s): %s\n", target, d.Reason, d.Text)
			return &exitError{code: exitDenied}
		},
	}
	pf.register(cmd.Flags())
	return cmd
}

// checkResolver replaces the system resolver of `sandgate check` in tests.
var checkResolver egress.Resolver

// unresolvedLine says that the policy allows name but the lookup failed;
// text is the gate's refusal text, "… could not be resolved: ERROR".
func unresolvedLine(entry, name, text string) string {
	why := text
	if _, after, ok := strings.Cut(text, "could not be resolved: "); ok {
		why = after
	}
	return fmt.Sprintf("allowed by entry %q, but %s does not resolve from here (%s)", entry, name, why)
}

// defaultPorts maps URL schemes to their usual ports.
var defaultPorts = map[string]uint16{"http": 80, "ws": 80, "https": 443, "wss": 443, "ssh": 22, "git": 9418, "ftp": 21}

// parseCheckTarget splits a URL or HOST[:PORT] into host and port.
func parseCheckTarget(s string) (string, uint16, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", 0, fmt.Errorf("invalid target URL %q: %w", s, err)
		}
		host := u.Hostname()
		if host == "" {
			return "", 0, fmt.Errorf("invalid target URL %q: no host", s)
		}
		if p := u.Port(); p != "" {
			port, err := parsePort(p)
			if err != nil {
				return "", 0, fmt.Errorf("invalid target URL %q: %w", s, err)
			}
			return host, port, nil
		}
		port, ok := defaultPorts[strings.ToLower(u.Scheme)]
		if !ok {
			return "", 0, fmt.Errorf("invalid target URL %q: no port and no default port for scheme %q", s, u.Scheme)
		}
		return host, port, nil
	}
	if host, p, err := net.SplitHostPort(s); err == nil {
		port, err := parsePort(p)
		if err != nil {
			return "", 0, fmt.Errorf("invalid target %q: %w", s, err)
		}
		if host == "" {
			return "", 0, fmt.Errorf("invalid target %q: no host", s)
		}
		return host, port, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if host == "" {
		return "", 0, fmt.Errorf("invalid target %q: no host", s)
	}
	return host, 443, nil
}

// parsePort parses a port of a command-line target (see policy.ParsePort)
// and says which ports there are when it is not one.
func parsePort(p string) (uint16, error) {
	n, err := policy.ParsePort(p)
	if err != nil {
		return 0, fmt.Errorf("%w (want 1-65535)", err)
	}
	return n, nil
}

package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/config"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// policyFlags are the flags every policy-using command shares.
type policyFlags struct {
	configPath   string
	allow        []string
	deny         []string
	allowPrivate bool
	readOnly     []string
	readOnlyGit  []string
	inspect      []string
}

func (p *policyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&p.configPath, "config", "", "configuration file (default: sandgate/config.toml in the user config directory, if present)")
	fs.StringArrayVar(&p.allow, "allow", nil, "allow a destination: NAME, *.NAME, **.NAME, IP or CIDR, each with an optional :PORT; or a rule 'METHODS HOST[/PATH-GLOB]' ('GET,HEAD api.example.com/repos/**'), which makes the host inspected (repeatable)")
	fs.StringArrayVar(&p.deny, "deny", nil, "deny a destination; deny wins over allow (repeatable)")
	fs.StringArrayVar(&p.readOnly, "read-only", nil, "allow only GET, HEAD and OPTIONS to HOST[:PORT][/PATH-GLOB] (an inspected host; repeatable)")
	fs.StringArrayVar(&p.readOnlyGit, "read-only-git", nil, "allow git clone and fetch over HTTPS from HOST[:PORT][/REPO-GLOB], and not push (an inspected host; repeatable)")
	fs.StringArrayVar(&p.inspect, "inspect", nil, "inspect HOST (decrypt its TLS; the audit gets each request's method and path) without narrowing what it allows (repeatable)")
	fs.BoolVar(&p.allowPrivate, "allow-private-destinations", false, "let allowed names resolve to private addresses (RFC 1918, 100.64.0.0/10, fc00::/7)")
}

// load reads the configuration and compiles the policy. Every failure is a
// usage error (exit 2) naming what was wrong.
func (p *policyFlags) load(allowLocalBinding bool) (*config.File, *policy.Policy, config.Overrides, error) {
	cf, err := config.Load(p.configPath)
	if err != nil {
		return nil, nil, config.Overrides{}, &exitError{code: exitUsage, err: err}
	}
	o := config.Overrides{Allow: p.allow, Deny: p.deny, AllowPrivateDestinations: p.allowPrivate, AllowLocalBinding: allowLocalBinding,
		ReadOnly: p.readOnly, ReadOnlyGit: p.readOnlyGit, Inspect: p.inspect}
	pol, err := policy.New(cf.PolicyConfig(o))
	if err != nil {
		where := "flags"
		if cf.Path != "" {
			where = "flags or " + cf.Path
		}
		return nil, nil, o, &exitError{code: exitUsage, err: fmt.Errorf("invalid policy (%s): %w", where, err)}
	}
	return cf, pol, o, nil
}

// gate builds the egress gate for a policy and configuration.
func newGate(cf *config.File, pol *policy.Policy) *egress.Gate {
	return &egress.Gate{Policy: pol, DialTimeout: cf.Limits().DialTimeout}
}

// auditSinks opens the JSON Lines file when asked and joins it with extra.
func auditSinks(path string, extra ...audit.Sink) (audit.Sink, func() error, error) {
	closeFn := func() error { return nil }
	sinks := append([]audit.Sink(nil), extra...)
	if path != "" {
		j, err := audit.OpenJSONL(path)
		if err != nil {
			return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("opening audit file: %w", err)}
		}
		sinks = append(sinks, j)
		closeFn = j.Close
	}
	return audit.Multi(sinks...), closeFn, nil
}

package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sandgate/sandgate/inspect"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox"
	"github.com/sandgate/sandgate/secrets"
)

// setupInspection gives a run TLS inspection when it needs it: when the
// policy decides some host's requests one by one (method/path rules,
// --read-only, --read-only-git, --inspect) or a secret is bound
// (spec.Secrets), it makes the run's CA, in memory only (its key never
// leaves this process, so never reaches CMD's view), and sets
// spec.Authority and spec.TrustPEM, the CA certificate CMD must trust.
// A run whose policy can change while it runs (--control: spec.Gate.Live)
// gets them too, so that a rule added later is inspected rather than
// refused. Runs without the proxy (--network none or full) need none.
//
// It first checks that each secret can reach a host the policy allows
// (unreachableSecretHosts): a usage error when none can, a note per
// refused host otherwise.
func setupInspection(spec *sandbox.Spec, pol *policy.Policy) error {
	live := spec.Gate != nil && spec.Gate.Live != nil
	if set, ok := spec.Secrets.(*secrets.Set); ok && set != nil {
		dynamic := live || (spec.Gate != nil && spec.Gate.Ask != nil)
		notes, err := unreachableSecretHosts(set, pol, dynamic)
		if err != nil {
			return err
		}
		for _, n := range notes {
			notify(n)
		}
	}
	if spec.Network != sandbox.NetworkProxy || (!pol.InspectsAny() && spec.Secrets == nil && !live) {
		return nil
	}
	a, err := inspect.NewAuthority()
	if err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("setting up TLS inspection: %w", err)}
	}
	spec.Authority = a
	spec.TrustPEM = a.CertPEM()
	return nil
}

// proxyInspection makes the CA of `sandgate proxy` when the policy inspects
// some host or --ca-out is given, and writes its certificate (never its
// key) to caOut, or to a temporary file when caOut is "", saying where on
// stderr: the proxy's clients must trust it. cleanup removes a temporary
// file. Without inspection it returns a nil Authority.
func proxyInspection(pol *policy.Policy, caOut string, stderr io.Writer) (a *inspect.Authority, cleanup func(), err error) {
	cleanup = func() {}
	if !pol.InspectsAny() && caOut == "" {
		return nil, cleanup, nil
	}
	if a, err = inspect.NewAuthority(); err != nil {
		return nil, cleanup, &exitError{code: exitFailure, err: fmt.Errorf("setting up TLS inspection: %w", err)}
	}
	path := caOut
	if path == "" {
		f, err := os.CreateTemp("", "sandgate-proxy-ca-*.pem")
		if err != nil {
			return nil, cleanup, &exitError{code: exitFailure, err: fmt.Errorf("writing the inspection CA certificate (give --ca-out FILE): %w", err)}
		}
		path = f.Name()
		f.Close()
		cleanup = func() { os.Remove(path) }
	}
	if err := os.WriteFile(path, a.CertPEM(), 0o644); err != nil {
		cleanup()
		if caOut != "" {
			return nil, func() {}, usageErr("writing the inspection CA certificate to --ca-out %s: %w (give a file in a directory that exists and you can write)", path, err)
		}
		return nil, func() {}, &exitError{code: exitFailure, err: fmt.Errorf("writing the inspection CA certificate to %s: %w (give --ca-out FILE)", path, err)}
	}
	fmt.Fprintf(stderr, "sandgate: TLS inspection: clients must trust the CA certificate in %s (made for this proxy; its key stays in memory)\n", path)
	return a, cleanup, nil
}

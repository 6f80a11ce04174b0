package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/sandgate/sandgate/config"
	"github.com/sandgate/sandgate/envfilter"
	"github.com/sandgate/sandgate/sandbox"
)

// hostFlags are run's flags about what of the host CMD gets besides the
// network: for now its environment (package envfilter).
type hostFlags struct {
	env []string // --env: secret-looking variables passed anyway
}

func (h *hostFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&h.env, "env", nil, "pass the secret-looking environment variable NAME (or every name starting with PREFIX, as PREFIX*) to CMD anyway (repeatable)")
}

// filterEnv gives spec the caller's environment without the secret-looking
// variables that neither --env nor the configuration's [environment] keep
// keeps, before sandbox.Run adds the proxy variables (whose credentialed
// URLs, on the identity backend, would look like secrets themselves). It
// returns the one line of the exit summary about them ("" when none were
// dropped).
func (h *hostFlags) filterEnv(cf *config.File, spec *sandbox.Spec) (string, error) {
	keep := cf.KeepEnv(h.env)
	for _, k := range h.env {
		if err := envfilter.CheckKeep(k); err != nil {
			return "", usageErr("--env: %w", err)
		}
	}
	env, dropped := envfilter.Filter(os.Environ(), keep)
	spec.Env = env
	if line := envfilter.Summary(dropped); line != "" {
		return "sandgate: " + line, nil
	}
	return "", nil
}

// printOnce prints line on stderr unless it is empty.
func printOnce(line string) {
	if line != "" {
		fmt.Fprintln(os.Stderr, line)
	}
}

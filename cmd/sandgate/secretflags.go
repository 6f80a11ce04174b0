package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sandgate/sandgate/config"
	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox"
	"github.com/sandgate/sandgate/secrets"
)

// secretFlags is run's --secret flag and the configuration's [secrets]
// table (package secrets): CMD gets a placeholder in $NAME, and the proxy
// puts the real value in its place only on requests to the secret's hosts.
type secretFlags struct {
	flags []string // --secret values
	// set is the run's secrets once apply made them (nil without any).
	set *secrets.Set
}

func (s *secretFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&s.flags, "secret", nil, "give CMD a placeholder in $NAME instead of the real value, which the proxy puts in requests to the PATTERN hosts only: NAME=PATTERN[,PATTERN…] (the value is sandgate's own $NAME) or NAME@FILE=PATTERN[,…] (the value is FILE's contents; FILE must not be in a writable root, and is hidden from CMD) (repeatable)")
}

// specs are the secrets of the configuration, then of the flags; a flag
// replaces the configuration's entry of the same name. Errors are usage
// errors.
func (s *secretFlags) specs(cf *config.File) ([]secrets.Spec, error) {
	out, err := cf.SecretSpecs()
	if err != nil {
		return nil, usageErr("%w", err)
	}
	for _, f := range s.flags {
		sp, err := secrets.ParseFlag(f)
		if err != nil {
			return nil, usageErr("%w", err)
		}
		if sp.File != "" {
			sp.File = absFlagPath(sp.File)
		}
		replaced := false
		for i := range out {
			if out[i].Name == sp.Name {
				out[i], replaced = sp, true
			}
		}
		if !replaced {
			out = append(out, sp)
		}
	}
	return out, nil
}

// names are the names of the configuration's and the flags' secrets, as
// far as they can be read (apply reports the errors): the environment
// filter must not report them as dropped, since CMD gets their
// placeholders.
func (s *secretFlags) names(cf *config.File) []string {
	var out []string
	for n := range cf.Secrets {
		if secrets.CheckName(n) == nil {
			out = append(out, n)
		}
	}
	for _, f := range s.flags {
		if sp, err := secrets.ParseFlag(f); err == nil {
			out = append(out, sp.Name)
		}
	}
	return out
}

// apply makes the run's secrets: each real value is read from env
// (sandgate's own environment) or its file, and spec.Env gets
// NAME=placeholder instead of any NAME it held; any other variable holding
// a real value gets the placeholder in its place. A real value in CMD's
// arguments is refused (the shell expanded it before sandgate could hide
// it). A value file must lie outside the workspace and the --write roots,
// and is added to the view's hidden paths. Call it after spec.View and
// spec.Env are set. Every failure is a usage error (exit 2).
func (s *secretFlags) apply(cf *config.File, spec *sandbox.Spec, env []string) error {
	specs, err := s.specs(cf)
	if err != nil || len(specs) == 0 {
		return err
	}
	if spec.Network != sandbox.NetworkProxy {
		return usageErr("--secret needs --network proxy: the proxy is what puts the real value into requests")
	}
	for i := range specs {
		if specs[i].File == "" {
			continue
		}
		p, err := secretFile(spec.View, specs[i].Name, specs[i].File)
		if err != nil {
			return usageErr("%w", err)
		}
		specs[i].File = p
		spec.View.Hide = append(spec.View.Hide, p)
	}
	set, err := secrets.Load(specs, env, readSecretFile)
	if err != nil {
		return usageErr("%w", err)
	}
	for i, a := range spec.Args {
		if set.Conceal(a) != a {
			return usageErr("CMD's argument %d holds the real value of a secret (did your shell expand $NAME? let CMD's own shell expand it, e.g. sh -c 'curl -H \"Authorization: Bearer $NAME\" …')", i)
		}
	}
	spec.Env = secretEnv(spec.Env, set)
	for _, n := range set.Notes() {
		notify(n)
	}
	s.set = set
	spec.Secrets = set
	return nil
}

// secretEnv is env without the secrets' own variables, with every real
// value elsewhere replaced by its placeholder, and with NAME=placeholder
// for each secret.
func secretEnv(env []string, set *secrets.Set) []string {
	own := map[string]bool{}
	for _, n := range set.Names() {
		own[n] = true
	}
	out := make([]string, 0, len(env)+set.Len())
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !own[name] {
			out = append(out, set.Conceal(kv))
		}
	}
	return append(out, set.Env()...)
}

// maxSecretFile bounds a value file: a token file is small, and a device
// or a huge file given by mistake must not stall or exhaust sandgate.
const maxSecretFile = 64 << 10

// readSecretFile reads a secret's value file: a regular file of at most
// maxSecretFile bytes.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%s is larger than %d KiB; a secret's value file holds just the value", path, maxSecretFile>>10)
	}
	return b, nil
}

// secretFile resolves a secret's value file ("~/" is the home directory)
// and refuses one CMD could write or replace: inside the workspace or a
// --write root, or any file with --fs host (CMD can read all of it).
func secretFile(view *fsview.Profile, name, file string) (string, error) {
	if view == nil || view.Mode == fsview.ModeHost {
		return "", fmt.Errorf("secret %s: with --fs host CMD can read every file you can, %s too; give the value in sandgate's environment instead (--secret %s=…), or use --fs workspace or readonly", name, file, name)
	}
	p := file
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("secret %s: expanding %s: %w", name, file, err)
		}
		p = filepath.Join(home, rest)
	}
	p = absFlagPath(p)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("secret %s: its value file: %w", name, err)
	}
	roots := append([]string{view.Workspace}, view.Write...)
	for _, r := range roots {
		if r == "" {
			continue
		}
		rr, err := filepath.EvalSymlinks(r)
		if err != nil {
			rr = r
		}
		if real == rr || strings.HasPrefix(real, strings.TrimSuffix(rr, string(filepath.Separator))+string(filepath.Separator)) {
			return "", fmt.Errorf("secret %s: its value file %s is inside %s, which CMD can write (it could read or replace the file); keep it outside the workspace and the --write paths", name, file, r)
		}
	}
	return real, nil
}

// unreachableSecretHosts checks each secret's host patterns against the
// policy: a secret bound only to hosts the policy refuses can never be
// sent, which is almost always a missing --allow. When every pattern of a
// secret names one host (a name or an address) and the policy refuses
// them all, that is an error, unless the policy can grow while the run
// goes on (dynamic: --decider, --ask, --control); otherwise each refused
// pattern is a note. Wildcard and CIDR patterns are not judged.
func unreachableSecretHosts(set *secrets.Set, pol *policy.Policy, dynamic bool) (notes []string, err error) {
	for _, name := range set.Names() {
		hosts := set.Hosts(name)
		var refused []string
		var why string
		judged, denied := 0, false
		for _, e := range hosts {
			d, ok := patternDecision(pol, e)
			if !ok {
				continue
			}
			judged++
			if !d.Allow {
				refused = append(refused, e.String())
				if why == "" {
					why = d.Text
				}
				denied = denied || d.Block == policy.BlockDenylist
			}
		}
		if len(refused) == 0 {
			continue
		}
		fix := fmt.Sprintf("allow it (--allow %s, or --read-only %s)", refused[0], refused[0])
		if denied {
			fix = "a deny entry wins over every allow entry: drop it"
		}
		if len(refused) == judged && judged == len(hosts) && !dynamic {
			return nil, usageErr("secret %s is bound to %s, which the policy does not allow (%s): no request could ever carry its value; %s, or bind the secret to a host the policy allows",
				name, strings.Join(refused, ", "), why, fix)
		}
		notes = append(notes, fmt.Sprintf("secret %s is bound to %s, which the policy does not allow now (%s); requests there are refused unless it is allowed: %s",
			name, strings.Join(refused, ", "), why, fix))
	}
	return notes, nil
}

// patternDecision decides a secret's host pattern when it names one host:
// a name (on any port, or on its port) or a single address (on its port,
// or 443). ok is false for wildcards and ranges.
func patternDecision(pol *policy.Policy, e policy.Entry) (d policy.Decision, ok bool) {
	port := e.Port
	switch {
	case e.Kind == policy.KindExact && port == 0:
		return pol.CheckName(e.Name), true
	case e.Kind == policy.KindExact:
		t, err := policy.ParseTarget(e.Name, port)
		if err != nil {
			return policy.Decision{}, false
		}
		return pol.CheckTarget(t), true
	case e.Kind == policy.KindPrefix && e.Prefix.IsSingleIP():
		if port == 0 {
			port = 443
		}
		t, err := policy.ParseTarget(e.Prefix.Addr().String(), port)
		if err != nil {
			return policy.Decision{}, false
		}
		return pol.CheckTarget(t), true
	}
	return policy.Decision{}, false
}

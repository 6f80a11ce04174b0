package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/sandbox"
	"github.com/sandgate/sandgate/setup"
)

// setupFlags are the flags of `sandgate setup`.
type setupFlags struct {
	ports     string
	localBind bool
	check     bool
	uninstall bool
}

func newSetupCmd() *cobra.Command {
	var f setupFlags
	cmd := &cobra.Command{
		Use:   "setup [--ports LIST] [--allow-local-binding] [--check | --uninstall]",
		Short: "Set up the identity backend: two sandbox users and their firewall rules (root)",
		Long: `Set up the identity backend: the system users sandgate-offline and
sandgate-online, their group sandgate, and firewall rules (on Linux the
nftables table inet sandgate) that confine the offline user to the loopback
proxy ports. It needs root (on Windows, an elevated administrator: sandgate
asks for elevation itself), is idempotent, prints each change it makes, and
writes a marker (on Linux /var/lib/sandgate/setup.json).

The rules do not survive a reboot: run "sandgate setup" again at boot (see
docs/identity.md for a systemd unit). Without --ports or
--allow-local-binding it keeps what is installed (defaults: ports
47100-47115, allow_local_binding off); SANDGATE_ALLOW_LOCAL_BINDING=1 turns
allow_local_binding on.

  --check      compare what is installed with what setup would install;
               print each difference; exit 0 only when current, else 1
  --uninstall  remove the users, group, homes, rules and marker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSetup(cmd, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.ports, "ports", "", "loopback proxy ports the offline user may reach: ranges and lists, e.g. 47100-47115 or 3128,1080 (default: what is installed, else 47100-47115)")
	fs.BoolVar(&f.localBind, "allow-local-binding", false, "open every local port to the offline user (non-local destinations stay blocked)")
	fs.BoolVar(&f.check, "check", false, "only compare the installed setup with what setup would install; exit 0 when current, 1 otherwise")
	fs.BoolVar(&f.uninstall, "uninstall", false, "remove the users, group, homes, firewall rules and marker")
	return cmd
}

// runSetup is `sandgate setup`: it checks the flags, settles the options,
// and checks, uninstalls or installs.
func runSetup(cmd *cobra.Command, f *setupFlags) error {
	fs := cmd.Flags()
	if f.check && f.uninstall {
		return usageErr("--check and --uninstall exclude each other")
	}
	if f.uninstall && (fs.Changed("ports") || fs.Changed("allow-local-binding")) {
		return usageErr("--uninstall takes no --ports or --allow-local-binding")
	}
	o, err := setupOptions(f, fs.Changed("ports"), fs.Changed("allow-local-binding"))
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.check {
		return setupCheck(out, o)
	}
	if notRoot() {
		what := "setting up the identity backend creates system users and installs nftables rules"
		if f.uninstall {
			what = "removing the identity backend deletes system users and nftables rules"
		}
		return &exitError{code: exitFailure, err: fmt.Errorf("setup needs root: %s; run it with sudo (or use --check)", what)}
	}
	if f.uninstall {
		return setupUninstall(out, o)
	}
	return setupInstall(out, o)
}

// setupOptions settles what setup installs: each setting from its flag
// (when given), then the environment, then what is installed, then the
// defaults (left to setup).
func setupOptions(f *setupFlags, portsGiven, albGiven bool) (setup.Options, error) {
	o := setup.Options{}
	if portsGiven {
		ps, err := ruleplan.ParsePorts(f.ports)
		if err != nil {
			return o, usageErr("invalid --ports %q: %v", f.ports, err)
		}
		o.ProxyPorts = ps
	}
	o.AllowLocalBinding = f.localBind
	if !albGiven && os.Getenv("SANDGATE_ALLOW_LOCAL_BINDING") == "1" {
		o.AllowLocalBinding, albGiven = true, true
	}
	if m, err := setup.ReadMarker(o.MarkerPath()); err == nil {
		if !portsGiven {
			o.ProxyPorts = m.ProxyPorts
		}
		if !albGiven {
			o.AllowLocalBinding = m.AllowLocalBinding
		}
	}
	return o, nil
}

// setupCheck is `sandgate setup --check`: it prints each difference between
// what is installed and o, and exits 1 (exitDenied) when there is one.
func setupCheck(out io.Writer, o setup.Options) error {
	diffs, err := setup.Check(o)
	if err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("checking the setup: %w", err)}
	}
	if !notRoot() {
		if stale, err := sandbox.StaleTransparentRules(o.NetNS); err == nil && len(stale) > 0 {
			fmt.Fprintf(out, "sandgate: %d identity runs that are gone left transparent rules (%s; they match no socket, and the next transparent identity run removes them)\n",
				len(stale), strings.Join(stale, ", "))
		}
	}
	if len(diffs) == 0 {
		fmt.Fprintf(out, "sandgate: the identity backend is set up and current (%s)\n", describeOptions(o))
		return nil
	}
	fmt.Fprintf(out, "sandgate: the identity backend is not current (compared with %s):\n", describeOptions(o))
	for _, d := range diffs {
		fmt.Fprintf(out, "  - %s\n", d)
	}
	if notRoot() {
		fmt.Fprintln(out, "sandgate: run as root to check everything, and `sandgate setup` as root to fix it")
	} else {
		fmt.Fprintln(out, "sandgate: run `sandgate setup` to fix it")
	}
	return &exitError{code: exitDenied}
}

// setupUninstall is `sandgate setup --uninstall`: it removes the identity
// backend and prints each change.
func setupUninstall(out io.Writer, o setup.Options) error {
	changes, err := setup.Uninstall(o)
	printChanges(out, changes)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	if len(changes) == 0 {
		fmt.Fprintln(out, "sandgate: nothing to remove: the identity backend is not set up")
	}
	return nil
}

// setupInstall installs or reconciles the identity backend to o and prints
// each change.
func setupInstall(out io.Writer, o setup.Options) error {
	_, changes, err := setup.Install(o)
	printChanges(out, changes)
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return &exitError{code: exitFailure, err: err}
		}
		return &exitError{code: exitFailure, err: fmt.Errorf("setup failed: %w", err)}
	}
	if len(changes) == 0 {
		fmt.Fprintf(out, "sandgate: already set up and current (%s)\n", describeOptions(o))
	}
	return nil
}

// printChanges prints each change setup made, one a line.
func printChanges(out io.Writer, changes []string) {
	for _, c := range changes {
		fmt.Fprintf(out, "sandgate: %s\n", c)
	}
}

// notRoot reports a caller without root on a Unix system. On Windows setup
// checks elevation itself and asks for it.
func notRoot() bool {
	return runtime.GOOS != "windows" && os.Geteuid() != 0
}

// describeOptions says in a few words what a setup with o installs.
func describeOptions(o setup.Options) string {
	o = o.WithDefaults()
	ps, _ := ruleplan.NormalizePorts(o.ProxyPorts)
	alb := "off"
	if o.AllowLocalBinding {
		alb = "on"
	}
	return fmt.Sprintf("proxy ports %s, allow_local_binding %s", ruleplan.FormatPorts(ps), alb)
}

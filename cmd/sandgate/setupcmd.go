package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/setup"
)

func newSetupCmd() *cobra.Command {
	var (
		ports     string
		localBind bool
		check     bool
		uninstall bool
	)
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
			fs := cmd.Flags()
			if check && uninstall {
				return usageErr("--check and --uninstall exclude each other")
			}
			if uninstall && (fs.Changed("ports") || fs.Changed("allow-local-binding")) {
				return usageErr("--uninstall takes no --ports or --allow-local-binding")
			}
			o := setup.Options{}
			// Flag, then environment, then what is installed, then defaults.
			portsGiven, albGiven := fs.Changed("ports"), fs.Changed("allow-local-binding")
			if portsGiven {
				ps, err := ruleplan.ParsePorts(ports)
				if err != nil {
					return usageErr("invalid --ports %q: %v", ports, err)
				}
				o.ProxyPorts = ps
			}
			o.AllowLocalBinding = localBind
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
			out := cmd.OutOrStdout()

			if check {
				diffs, err := setup.Check(o)
				if err != nil {
					return &exitError{code: exitFailure, err: fmt.Errorf("checking the setup: %w", err)}
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

			if notRoot() {
				what := "setting up the identity backend creates system users and installs nftables rules"
				if uninstall {
					what = "removing the identity backend deletes system users and nftables rules"
				}
				return &exitError{code: exitFailure, err: fmt.Errorf("setup needs root: %s; run it with sudo (or use --check)", what)}
			}
			if uninstall {
				changes, err := setup.Uninstall(o)
				for _, c := range changes {
					fmt.Fprintf(out, "sandgate: %s\n", c)
				}
				if err != nil {
					return &exitError{code: exitFailure, err: err}
				}
				if len(changes) == 0 {
					fmt.Fprintln(out, "sandgate: nothing to remove: the identity backend is not set up")
				}
				return nil
			}
			_, changes, err := setup.Install(o)
			for _, c := range changes {
				fmt.Fprintf(out, "sandgate: %s\n", c)
			}
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
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&ports, "ports", "", "loopback proxy ports the offline user may reach: ranges and lists, e.g. 47100-47115 or 3128,1080 (default: what is installed, else 47100-47115)")
	fs.BoolVar(&localBind, "allow-local-binding", false, "open every local port to the offline user (non-local destinations stay blocked)")
	fs.BoolVar(&check, "check", false, "only compare the installed setup with what setup would install; exit 0 when current, 1 otherwise")
	fs.BoolVar(&uninstall, "uninstall", false, "remove the users, group, homes, firewall rules and marker")
	return cmd
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

// Command sandgate runs a command so that its network egress goes only
// through sandgate's own policy-enforcing proxy, enforced by the kernel.
//
//	sandgate run --allow github.com -- git clone https://github.com/x/y
//	sandgate proxy --http 127.0.0.1:3128 --socks 127.0.0.1:1080 --allow example.com
//	sandgate check --allow '*.example.com' https://www.example.com/
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit statuses of sandgate itself (a command run by `sandgate run` returns its own).
const (
	exitDenied = 1 // `sandgate check`: the target is refused
	exitUsage  = 2 // bad flags, bad configuration
	// exitUnresolved is `sandgate check`'s status for a target the policy
	// allows whose name does not resolve from here.
	exitUnresolved = 3
	exitFailure    = 125 // sandgate failed, including "enforcement unavailable"
)

// exitError carries an exit status out of a command.
type exitError struct {
	code int
	err  error // nil when nothing more should be printed
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func main() {
	if code, ok := hiddenRole(os.Args); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := rootCmdFor(args)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(os.Stderr, "sandgate: %v\n", ee.err)
		}
		return ee.code
	}
	// Cobra's own errors: unknown flags, missing arguments.
	fmt.Fprintf(os.Stderr, "sandgate: %v\n", err)
	return exitUsage
}

// subcommands are sandgate's commands, each built only when needed.
var subcommands = []struct {
	name  string
	build func() *cobra.Command
}{
	{"run", newRunCmd}, {"proxy", newProxyCmd}, {"check", newCheckCmd}, {"socks-connect", newSOCKSConnectCmd},
	{"setup", newSetupCmd}, {"doctor", newDoctorCmd}, {"version", newVersionCmd}, {"ctl", newCtlCmd},
}

// rootCmdFor returns the command tree that executes args. When args[0]
// names a subcommand, that subcommand is the only one built: nothing it
// prints (its help, usage and errors included) depends on its siblings,
// and building every command's flags is a measurable part of each start.
// Nor is cobra's completion command (which cobra would build at each
// Execute) reachable then. Anything else (no arguments, a flag first,
// help, completion, an unknown command and its suggestions) gets the whole
// tree.
func rootCmdFor(args []string) *cobra.Command {
	if len(args) > 0 {
		for _, sc := range subcommands {
			if sc.name == args[0] {
				root := newRoot(sc.build())
				root.CompletionOptions.DisableDefaultCmd = true
				return root
			}
		}
	}
	return newRootCmd()
}

// newRootCmd returns the whole command tree.
func newRootCmd() *cobra.Command {
	cmds := make([]*cobra.Command, 0, len(subcommands))
	for _, sc := range subcommands {
		cmds = append(cmds, sc.build())
	}
	return newRoot(cmds...)
}

// newRoot returns the root command with cmds as its subcommands.
func newRoot(cmds ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "sandgate",
		Short: "Run commands whose network egress goes only through a policy proxy",
		Long: `sandgate runs a command so that its network egress goes only through
sandgate's own policy-enforcing HTTP and SOCKS5 proxy, and the operating
system, not the command's good manners, makes it so.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(cmds...)
	versionFlag(root)
	usageOnArgErrors(root)
	return root
}

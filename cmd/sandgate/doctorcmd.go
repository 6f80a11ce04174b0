package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/doctor"
)

// exitDoctorFailed is `sandgate doctor`'s status when something a default
// run relies on does not hold.
const exitDoctorFailed = 1

func newDoctorCmd() *cobra.Command {
	var asJSON bool
	var extra []string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Report what this host can enforce, and prove it with one sandboxed run",
		Long: `doctor reads what the kernel offers (user namespaces and why not, the
Landlock ABI, seccomp, the identity backend's setup and its drift) and then
runs one sandbox the way a default "sandgate run" would. From inside it
checks that a direct TCP connection and a direct UDP datagram to this host
get nowhere, that a request to a local test target through the proxy works
and is audited, and that a write outside the workspace fails.

Exit status 0 when everything a default run relies on holds; 1 otherwise,
with one line per failure and its fix.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			rep := doctor.Run(cmd.Context(), doctor.Options{Self: self, Args: extra})
			if asJSON {
				err = rep.WriteJSON(cmd.OutOrStdout())
			} else {
				err = rep.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			if !rep.OK() {
				return &exitError{code: exitDoctorFailed}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	cmd.Flags().StringArrayVar(&extra, "run-flag", nil, "an extra `sandgate run` flag for the proof (e.g. --run-flag=--backend=identity); repeatable")
	return cmd
}

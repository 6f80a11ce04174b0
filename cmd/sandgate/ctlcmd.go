package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/control"
)

// ctlUsage is the usage line of sandgate ctl.
const ctlUsage = "ctl RUN allow ENTRY | ctl RUN deny ENTRY | ctl RUN show | ctl list"

func newCtlCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   ctlUsage,
		Short: "Change or show the policy of a running sandbox (started with sandgate run --control)",
		Long: `Change or show the policy of a running sandbox through its control socket
(sandgate run --control prints the run id; sandgate ctl list lists them).

  sandgate ctl RUN allow ENTRY   add an --allow entry; it is in force at once
  sandgate ctl RUN deny ENTRY    add a --deny entry; open connections it denies are cut
  sandgate ctl RUN show          the generation and the entries in force
  sandgate ctl list              the running runs: id, pid, generation, command

Only you (your uid) and root can reach a run's control socket; the sandboxed
command cannot. Every change has a new generation number, which the audit
records (proto "control", decision "update") and every later decision
carries (gen). See docs/control.md for the protocol.

Exit status: 0 done; 2 unknown run (the running ones are listed), malformed
entry or request (the policy's own words); 125 the run could not be
reached or refused.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCtl(cmd.OutOrStdout(), cmd.ErrOrStderr(), args, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run's answer (list: one answer per run, as an array) as JSON")
	return cmd
}

// runCtl does one sandgate ctl command.
func runCtl(out, errw io.Writer, args []string, asJSON bool) error {
	if len(args) == 1 && args[0] == "list" {
		return ctlList(out, errw, asJSON)
	}
	if len(args) < 2 {
		return ctlUsageErr(errw, "give a run id and what to do, e.g. sandgate ctl RUN allow example.com:443")
	}
	run, op := args[0], args[1]
	var req control.Request
	switch control.Op(op) {
	case control.OpShow:
		if len(args) != 2 {
			return ctlUsageErr(errw, "show takes nothing more")
		}
		req = control.Request{Op: control.OpShow}
	case control.OpAllow, control.OpDeny:
		if len(args) != 3 {
			return ctlUsageErr(errw, fmt.Sprintf("%s takes one entry (quote a rule with spaces, as in '%s GET example.com/api')", op, op))
		}
		req = control.Request{Op: control.Op(op), Entry: args[2]}
		if _, err := control.ParseRequest([]byte(req.String())); err != nil {
			return usageErr("%w", err)
		}
	default:
		return ctlUsageErr(errw, fmt.Sprintf("unknown action %q: want allow, deny or show", op))
	}
	if err := control.CheckRunID(run); err != nil {
		return usageErr("%w", err)
	}
	resp, err := ctlDo(run, req)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, resp)
	}
	if req.Op == control.OpShow {
		printShow(out, resp)
		return nil
	}
	fmt.Fprintf(out, "%s %s: in force at generation %d\n", req.Op, req.Entry, resp.Gen)
	return nil
}

// ctlUsageErr prints the usage line and a hint, for exit status 2.
func ctlUsageErr(errw io.Writer, hint string) error {
	fmt.Fprintf(errw, "usage: sandgate %s\n", ctlUsage)
	fmt.Fprintf(errw, "sandgate: %s\n", hint)
	return &exitError{code: exitUsage}
}

// ctlDo sends one request to run and returns its answer; a refusal is an
// exitError: 2 for an unknown run or a malformed entry, 125 otherwise.
func ctlDo(run string, req control.Request) (control.Response, error) {
	cl, err := control.Dial("", run)
	if err != nil {
		var ue *control.UnknownRunError
		if errors.As(err, &ue) {
			return control.Response{}, &exitError{code: exitUsage, err: err}
		}
		return control.Response{}, &exitError{code: exitFailure, err: err}
	}
	defer cl.Close()
	resp, err := cl.Do(req)
	if err != nil {
		return control.Response{}, &exitError{code: exitFailure, err: fmt.Errorf("run %s: %w", run, err)}
	}
	if !resp.OK {
		code := exitFailure
		if resp.Kind == control.KindEntry || resp.Kind == control.KindRequest {
			code = exitUsage
		}
		return resp, &exitError{code: code, err: fmt.Errorf("run %s: %s", run, resp.Error)}
	}
	return resp, nil
}

// ctlList prints the running runs, one line each (or their show answers as
// a JSON array).
func ctlList(out, errw io.Writer, asJSON bool) error {
	ids, err := control.List("")
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	shows := make([]control.Response, 0, len(ids))
	for _, id := range ids {
		resp, err := ctlDo(id, control.Request{Op: control.OpShow})
		if err != nil {
			continue // it ended meanwhile
		}
		shows = append(shows, resp)
	}
	if asJSON {
		return printJSON(out, shows)
	}
	if len(shows) == 0 {
		fmt.Fprintln(errw, "sandgate: no run with a control socket is running (start one with sandgate run --control)")
	}
	for _, r := range shows {
		fmt.Fprintf(out, "%s\tpid %d\tgen %d\t%s\n", r.Run, r.PID, r.Gen, shortLine(commandLine(r.Command), 100))
	}
	return nil
}

// printShow prints a show answer for people.
func printShow(out io.Writer, r control.Response) {
	fmt.Fprintf(out, "run %s (pid %d): %s\n", r.Run, r.PID, commandLine(r.Command))
	fmt.Fprintf(out, "generation %d\n", r.Gen)
	list := func(name string, es []string) {
		if len(es) == 0 {
			fmt.Fprintf(out, "%s: (none)\n", name)
			return
		}
		fmt.Fprintf(out, "%s: %s\n", name, strings.Join(es, " "))
	}
	list("allow", r.Allow)
	list("deny", r.Deny)
}

// commandLine shows a command on one line: arguments with spaces, quotes
// or control characters are quoted (Go syntax).
func commandLine(args []string) string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == '"' || r == '\'' || r == '\\' || r == 0x7f }) {
			a = strconv.Quote(a)
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// shortLine cuts s to at most n runes, marking the cut.
func shortLine(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func printJSON(out io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

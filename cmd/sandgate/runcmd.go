package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/sandbox"
)

// runLong is the help text of sandgate run.
const runLong = `Run CMD in a sandbox whose only way to the network is sandgate's HTTP and
SOCKS5 proxy, under the policy; the kernel enforces it.

  --network proxy  (default) only through the proxy, under the policy; with
                   the transparent path (off with --no-transparent), the
                   TCP connections and DNS queries of programs that ignore
                   the proxy variables are decided by the same policy
  --network none   no network at all (a private loopback only)
  --network full   the host's network, no proxy (still sandboxed otherwise)

Exit status: CMD's own; 128+N if CMD died of signal N; 125 if sandgate
itself failed (including "enforcement unavailable"); 126 CMD not
executable; 127 CMD not found.`

func newRunCmd() *cobra.Command {
	var (
		pf        policyFlags
		network   string
		backend   string
		auditPath string
		localBind bool
		quiet     bool
		allowUnix bool
		unixPaths []string
		keepGrant bool
		host      hostFlags
		secret    secretFlags
		noTransp  bool
		upstream  upstreamFlags
		ctl       controlFlags
		df        decideFlags
	)
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARG]...",
		Short: "Run CMD with network egress only through sandgate's policy proxy",
		Long:  runLong,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var spec sandbox.Spec
			if err := setModes(&spec, network, backend); err != nil {
				return err
			}
			cf, pol, o, err := pf.load(localBind)
			if err != nil {
				return err
			}
			summary := &audit.Summary{}
			sink, closeAudit, err := auditSinks(auditPath, summary)
			if err != nil {
				return err
			}
			defer closeAudit()

			spec.Args = args
			host.env = append(host.env, secret.names(cf)...) // CMD gets their placeholders
			envLine, err := host.filterEnv(cf, &spec)
			if err != nil {
				return err
			}
			if err := host.view(cf, &spec, auditPath); err != nil {
				return err
			}
			if err := secret.apply(cf, &spec, os.Environ()); err != nil {
				return err
			}
			if spec.Gate, err = upstream.gate(cf, pol); err != nil {
				return err
			}
			if err := df.apply(&spec, sink, ctl.runID); err != nil {
				return err
			}
			defer df.close()
			spec.ProxyLimits = cf.Limits()
			if spec.UnixSockets, err = unixSocketPaths(cf, unixPaths); err != nil {
				return err
			}
			spec.AllowUnixSockets = allowUnix
			spec.AllowLocalBinding = cf.AllowLocalBinding(o) || os.Getenv("SANDGATE_ALLOW_LOCAL_BINDING") == "1"
			spec.KeepDirGrant = keepGrant
			spec.Transparent = !noTransp
			spec.Logf = stderrLogf(quiet)
			spec.Notify = notify
			stopControl, err := ctl.start(&spec, sink)
			if err != nil {
				return err
			}
			if err := setupInspection(&spec, pol); err != nil {
				stopControl()
				return err
			}
			res, err := sandbox.Run(context.Background(), spec)
			stopControl()
			warnViewChanged(os.Stderr, res.ViewChanged, res.ViewFindings)
			if verr, ok := viewError(cf, err); ok {
				return verr
			}
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			printExitSummary(quiet, envLine, summary)
			return runOutcome(res)
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	pf.register(fs)
	upstream.register(fs)
	fs.StringVar(&network, "network", "proxy", "network mode: proxy, none or full")
	fs.StringVar(&backend, "backend", "auto", "enforcement backend: auto, netns or identity")
	fs.StringVar(&auditPath, "audit", "", "append every proxy decision as JSON Lines to FILE")
	fs.BoolVar(&localBind, "allow-local-binding", false, "let CMD reach local (loopback) services; with the netns backend loopback is the sandbox's own and always open")
	fs.BoolVar(&quiet, "quiet", false, "print nothing of sandgate's own at exit")
	fs.BoolVar(&keepGrant, "keep-dir-grant", false, "identity backend: leave the sandbox group's ACL grant on the working directory after the run")
	host.register(fs)
	secret.register(fs)
	df.register(fs)
	fs.BoolVar(&noTransp, "no-transparent", false, "--network proxy: turn off the transparent path, which decides (by the same policy) the TCP connections and DNS queries of programs that ignore the proxy variables, and refuses other UDP")
	fs.BoolVar(&allowUnix, "allow-unix-sockets", false, "RISK: let CMD create unix sockets, which can reach host services (docker.sock, ssh-agent) outside the policy")
	fs.StringArrayVar(&unixPaths, "allow-unix-socket", nil, "let CMD connect to the unix socket PATH (e.g. \"$SSH_AUTH_SOCK\"), and to no other unix socket; Linux (repeatable)")
	ctl.register(fs)
	return cmd
}

// printExitSummary prints a run's lines at exit (the environment variables
// dropped, the refusals), unless quiet.
func printExitSummary(quiet bool, envLine string, summary *audit.Summary) {
	if quiet {
		return
	}
	printOnce(envLine)
	if line := refusalLine(summary.Refusals()); line != "" {
		fmt.Fprintln(os.Stderr, line)
	}
}

// stderrLogf is a run's Spec.Logf: sandgate's lines on stderr, none when
// quiet.
func stderrLogf(quiet bool) func(format string, a ...any) {
	return func(format string, a ...any) {
		if !quiet {
			fmt.Fprintf(os.Stderr, "sandgate: "+format+"\n", a...)
		}
	}
}

// notify prints one of sandgate's own messages to the user on sandgate's
// stderr (Spec.Notify of every run, whatever --quiet says).
func notify(msg string) {
	fmt.Fprintf(os.Stderr, "sandgate: %s\n", msg)
}

// refusalLine is the one-line exit summary of refused connections, with the
// flag that would allow the first one when there is one. "" when none.
func refusalLine(rs []audit.Refusal) string {
	text := audit.FormatSummary(rs)
	if text == "" {
		return ""
	}
	line := "sandgate: " + text
	if hint := allowHint(rs[0]); hint != "" {
		line += "; " + hint
	}
	return line
}

// allowHint names the flag that would allow a refused destination, if any
// flag would (metadata addresses and numeric names have none on purpose).
func allowHint(r audit.Refusal) string {
	target := net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port)))
	if r.Port == 0 {
		// A name refused by the DNS stub, before CMD chose a port.
		switch r.Reason {
		case "not-allowed":
			return fmt.Sprintf("to allow %s, add --allow %s:PORT", r.Host, r.Host)
		case "denied":
			return fmt.Sprintf("%s matches a deny entry; deny entries win over allow entries", r.Host)
		}
		return ""
	}
	switch {
	case r.Reason == "blocked-by-method" || r.Reason == "blocked-by-path":
		return r.Text // the request, the rules there and the rule that would allow it
	case r.Reason == "upstream-tls" || r.Reason == "secret-not-bound":
		return r.Text // why the certificate failed; which secret went where
	case r.Reason == "not-allowed":
		return fmt.Sprintf("to allow %s, add --allow %s", target, hintEntry(r.Host, r.Port))
	case r.Reason == "address-class:private":
		return fmt.Sprintf("to allow %s, add --allow-private-destinations", target)
	case r.Reason == "denied":
		return fmt.Sprintf("%s matches a deny entry; deny entries win over allow entries", target)
	case strings.HasPrefix(r.Reason, "address-class:") && r.Reason != "address-class:metadata":
		if _, err := netip.ParseAddr(r.Host); err == nil {
			return fmt.Sprintf("to allow %s, add --allow %s", target, hintEntry(r.Host, r.Port))
		}
	}
	return ""
}

func hintEntry(host string, port uint16) string {
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		return "'[" + host + "]:" + strconv.Itoa(int(port)) + "'"
	}
	return host + ":" + strconv.Itoa(int(port))
}

// setModes sets spec's network mode and backend from their flags.
func setModes(spec *sandbox.Spec, network, backend string) error {
	switch network {
	case "proxy":
		spec.Network = sandbox.NetworkProxy
	case "none":
		spec.Network = sandbox.NetworkNone
	case "full":
		spec.Network = sandbox.NetworkFull
	default:
		return usageErr("invalid --network %q: want proxy, none or full", network)
	}
	switch backend {
	case "auto":
		spec.Backend = sandbox.BackendAuto
	case "netns":
		spec.Backend = sandbox.BackendNetns
	case "identity":
		spec.Backend = sandbox.BackendIdentity
	default:
		return usageErr("invalid --backend %q: want auto, netns or identity", backend)
	}
	return nil
}

// runOutcome turns a finished run into sandgate's exit: CMD's own status,
// or 125 when the proxy failed during a run that CMD thought went well.
func runOutcome(res sandbox.Result) error {
	if res.ProxyErr != nil {
		fmt.Fprintf(os.Stderr, "sandgate: the proxy failed during the run, so CMD's connections failed: %v\n", res.ProxyErr)
		if res.ExitCode == 0 {
			return &exitError{code: exitFailure}
		}
	}
	if res.ExitCode != 0 {
		return &exitError{code: res.ExitCode}
	}
	return nil
}

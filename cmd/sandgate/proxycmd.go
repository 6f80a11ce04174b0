package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/proxy"
)

func newProxyCmd() *cobra.Command {
	var (
		pf        policyFlags
		httpAddr  string
		socksAddr string
		auditPath string
		credsFile string
		openProxy bool
		drain     time.Duration
		quiet     bool
		caOut     string
		upstream  upstreamFlags
		df        decideFlags
	)
	cmd := &cobra.Command{
		Use:   "proxy [flags]",
		Short: "Serve the policy-enforcing HTTP and SOCKS5 proxy until interrupted",
		Long: `Serve sandgate's HTTP/1.1 forward proxy and SOCKS5 proxy under the policy
until SIGINT or SIGTERM, then drain open connections.

Each refusal is one line on stderr (at most 10 a second, then one line
counting the rest); --quiet silences them, --audit FILE records every
decision.

Hosts with method/path rules (--read-only, --read-only-git, --inspect,
--allow 'METHODS HOST/PATH') are inspected: the proxy terminates their TLS
with a CA made at start, whose certificate clients must trust (--ca-out).

Listening on a non-loopback address is refused unless credentials are set
(--credentials-file) or --allow-open-proxy says you want an open proxy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if httpAddr == "" && socksAddr == "" {
				return usageErr("nothing to serve: give --http, --socks or both")
			}
			cf, pol, _, err := pf.load(false)
			if err != nil {
				return err
			}
			var creds *proxy.Credentials
			if credsFile != "" {
				if creds, err = readCredentials(credsFile); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
			}
			if err := checkListenAddrs(creds != nil, openProxy, httpAddr, socksAddr); err != nil {
				return err
			}
			var extra []audit.Sink
			if !quiet {
				rl := audit.NewRefusalLog(os.Stderr, refusalLinesPerSecond, nil)
				defer rl.Flush()
				extra = append(extra, rl)
			}
			sink, closeAudit, err := auditSinks(auditPath, extra...)
			if err != nil {
				return err
			}
			defer closeAudit()
			authority, removeCA, err := proxyInspection(pol, caOut, os.Stderr)
			if err != nil {
				return err
			}
			defer removeCA()
			gate, err := upstream.gate(cf, pol)
			if err != nil {
				return err
			}
			if line := upstreamLine(gate.Upstream); line != "" {
				fmt.Fprintln(os.Stderr, "sandgate: "+line)
			}
			if err := df.applyGate(gate, ""); err != nil { // --ask's terminal is closed at exit
				return err
			}
			srv := proxy.New(proxy.Options{
				Gate:        gate,
				Audit:       sink,
				Credentials: creds,
				Limits:      cf.Limits(),
				Authority:   authority,
				Logf: func(format string, args ...any) {
					fmt.Fprintf(os.Stderr, "sandgate: "+format+"\n", args...)
				},
			})
			defer statsOnSignal(srv, os.Stderr)()
			httpLn, socksLn, err := listenPair(httpAddr, socksAddr)
			if err != nil {
				return err
			}
			pair := srv.ServePair(httpLn, socksLn)
			sigc := make(chan os.Signal, 1)
			signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sigc)
			select {
			case s := <-sigc:
				fmt.Fprintf(os.Stderr, "sandgate: %v: draining connections (up to %v)\n", s, drain)
			case <-pair.Failed():
			}
			_ = pair.Shutdown(drain)
			var se *proxy.ServeError
			if errors.As(pair.Err(), &se) {
				return &exitError{code: exitFailure, err: fmt.Errorf("proxy stopped: %w", se.Err)}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	pf.register(fs)
	upstream.register(fs)
	df.register(fs)
	fs.StringVar(&httpAddr, "http", "127.0.0.1:3128", "address of the HTTP proxy listener (\"\" to disable)")
	fs.StringVar(&socksAddr, "socks", "127.0.0.1:1080", "address of the SOCKS5 proxy listener (\"\" to disable)")
	fs.StringVar(&auditPath, "audit", "", "append every decision as JSON Lines to FILE")
	fs.StringVar(&credsFile, "credentials-file", "", "require clients to authenticate with the USER:PASSWORD on the first line of FILE")
	fs.BoolVar(&openProxy, "allow-open-proxy", false, "allow listening on a non-loopback address without credentials")
	fs.BoolVarP(&quiet, "quiet", "q", false, "do not print a line on stderr for each refusal")
	fs.StringVar(&caOut, "ca-out", "", "write the TLS inspection CA certificate (for clients to trust) to FILE; default: a temporary file, named on stderr, when the policy inspects a host")
	fs.DurationVar(&drain, "drain-timeout", 10*time.Second, "how long to wait for open connections at shutdown")
	return cmd
}

// refusalLinesPerSecond bounds the refusal lines `sandgate proxy` prints.
const refusalLinesPerSecond = 10

// listenPair listens on the HTTP and SOCKS5 addresses that are not "",
// saying so on stderr.
func listenPair(httpAddr, socksAddr string) (httpLn, socksLn net.Listener, err error) {
	var lns [2]net.Listener
	for i, l := range []struct{ addr, proto string }{{httpAddr, "HTTP"}, {socksAddr, "SOCKS5"}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			if lns[0] != nil {
				lns[0].Close()
			}
			return nil, nil, &exitError{code: exitFailure, err: fmt.Errorf("listening for %s on %s: %w", l.proto, l.addr, err)}
		}
		fmt.Fprintf(os.Stderr, "sandgate: %s proxy listening on %s\n", l.proto, ln.Addr())
		lns[i] = ln
	}
	return lns[0], lns[1], nil
}

// checkListenAddrs checks each listen address that is not "" (see
// checkListenAddr); a refusal is a usage error.
func checkListenAddrs(haveCreds, open bool, addrs ...string) error {
	for _, a := range addrs {
		if a == "" {
			continue
		}
		if err := checkListenAddr(a, haveCreds, open); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
	}
	return nil
}

// checkListenAddr refuses a listener that other hosts could reach unless it
// requires credentials or the operator explicitly wants an open proxy.
func checkListenAddr(addr string, haveCreds, open bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	if haveCreds || open {
		return nil
	}
	return fmt.Errorf("listen address %q is not loopback: other hosts could use this proxy; set --credentials-file, or pass --allow-open-proxy if you really want an open proxy", addr)
}

// readCredentials reads USER:PASSWORD from the first line of path.
func readCredentials(path string) (*proxy.Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimRight(line, "\r")
	user, pass, ok := strings.Cut(line, ":")
	if !ok || user == "" || pass == "" {
		return nil, errors.New("credentials file " + path + ": first line must be USER:PASSWORD, both non-empty")
	}
	if len(user) > 255 || len(pass) > 255 {
		return nil, errors.New("credentials file " + path + ": user and password must each be at most 255 bytes (SOCKS5 limit)")
	}
	return &proxy.Credentials{User: user, Password: pass}, nil
}

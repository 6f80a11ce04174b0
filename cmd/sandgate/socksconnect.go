package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandgate/sandgate/internal/socks5"
	"github.com/sandgate/sandgate/proxyenv"
)

// newSOCKSConnectCmd is the ssh ProxyCommand sandgate gives to commands it
// runs (through GIT_SSH_COMMAND), so no helper binary is needed inside the
// sandbox: it opens a SOCKS5 CONNECT to HOST:PORT and relays stdin/stdout.
func newSOCKSConnectCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "socks-connect SOCKSADDR HOST PORT",
		Short:  "Relay stdin/stdout to HOST:PORT through a SOCKS5 proxy (an ssh ProxyCommand)",
		Hidden: true,
		Args:   cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			port, err := parsePort(args[2])
			if err != nil {
				return usageErr("%v", err)
			}
			conn, err := socksDial(args[0], args[1], port, os.Getenv(proxyenv.SOCKSUserEnv), os.Getenv(proxyenv.SOCKSPasswordEnv))
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			defer conn.Close()
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(conn, os.Stdin)
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				close(done)
			}()
			_, err = io.Copy(os.Stdout, conn)
			if err != nil {
				return &exitError{code: exitFailure, err: fmt.Errorf("relaying from %s:%d: %w", args[1], port, err)}
			}
			return nil
		},
	}
}

// socksDialTimeout bounds connecting to the proxy and the whole handshake.
const socksDialTimeout = 30 * time.Second

// socksDial opens a SOCKS5 CONNECT to host:port through the proxy at addr,
// with username/password authentication when user is set.
func socksDial(addr, host string, port uint16, user, pass string) (net.Conn, error) {
	var auth *socks5.Auth
	if user != "" {
		auth = &socks5.Auth{User: user, Password: pass}
	}
	ctx, cancel := context.WithTimeout(context.Background(), socksDialTimeout)
	defer cancel()
	return socks5.Dial(ctx, addr, host, port, auth)
}

//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/sandgate/sandgate/proxy"
)

// statsOnSignal makes SIGUSR1 print one line of what the proxy holds to w,
// for operators and the soak benchmark. The returned function stops it.
func statsOnSignal(srv *proxy.Server, w io.Writer) (stop func()) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sigc:
				st := srv.Stats()
				fmt.Fprintf(w, "sandgate: stats: %d connections (max_conns %d), %d goroutines, %d splice pipes (%d idle, at most %d)\n",
					st.Conns, srv.Limits().MaxConns, runtime.NumGoroutine(), st.Pipes, st.IdlePipes, st.MaxPipes)
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigc)
		close(done)
	}
}

//go:build unix

package main

import (
	"bufio"
	"io"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/sandgate/sandgate/proxy"
)

func TestStatsOnSignal(t *testing.T) {
	srv := proxy.New(proxy.Options{Limits: proxy.Limits{MaxConns: 7}})
	r, w := io.Pipe()
	stop := statsOnSignal(srv, w)
	defer stop()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		if sc.Scan() {
			lines <- sc.Text()
		}
	}()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		want := regexp.MustCompile(`^sandgate: stats: 0 connections \(max_conns 7\), \d+ goroutines, 0 splice pipes \(0 idle, at most \d+\)$`)
		if !want.MatchString(l) {
			t.Errorf("stats line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no stats line after SIGUSR1")
	}
	w.Close()
}

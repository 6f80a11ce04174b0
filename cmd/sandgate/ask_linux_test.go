//go:build linux

package main

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/decide"
)

// askPTY opens a pty whose slave plays sandgate's terminal for --ask.
func askPTY(t *testing.T) (master *os.File, slavePath string) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatalf("opening a pty: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s.Name()
}

// readUntil reads the master until it has seen want.
func readUntil(t *testing.T, m *os.File, want string) string {
	t.Helper()
	var got strings.Builder
	buf := make([]byte, 1024)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(got.String(), want) {
		_ = m.SetReadDeadline(deadline)
		n, err := m.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("reading the terminal: %v; so far %q, want %q", err, got.String(), want)
		}
	}
	return got.String()
}

var askQuestion = decide.Question{Run: "r", Protocol: "connect", Host: "notlisted.example", Port: 443}

func TestAskTerminalKeys(t *testing.T) {
	m, path := askPTY(t)
	old := askTerminalPath
	askTerminalPath = path
	t.Cleanup(func() { askTerminalPath = old })
	hold := &sync.Mutex{}
	p, closer, err := openAskTerminal(5*time.Second, hold)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()

	cases := []struct {
		key  string
		want decide.Answer
	}{
		{"o", decide.Answer{Allow: true, Scope: decide.ScopeOnce}},
		{"r", decide.Answer{Allow: true, Scope: decide.ScopeRun}},
		{"d", decide.Answer{}},
		{"n", decide.Answer{Scope: decide.ScopeRun}}, // never: denied for the run
		{"\x03", decide.Answer{}},                    // Ctrl-C is a key here (no signal), and denies
	}
	for i, c := range cases {
		q := askQuestion
		q.Port = uint16(1000 + i) // a new destination each time (an "r" is remembered)
		// A key typed before the question is dropped, not taken as the answer.
		if _, err := m.Write([]byte("o")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		type result struct {
			ans decide.Answer
			err error
		}
		res := make(chan result, 1)
		go func() {
			ans, err := p.Decide(context.Background(), q)
			res <- result{ans, err}
		}()
		readUntil(t, m, "or [n]ever (deny for this run)?")
		if hold.TryLock() {
			hold.Unlock()
			t.Fatal("the relay's hold is free during the prompt")
		}
		// A canonical terminal is switched to single keys: no Enter needed.
		if _, err := m.Write([]byte(c.key)); err != nil {
			t.Fatal(err)
		}
		r := <-res
		if r.err != nil || r.ans != c.want {
			t.Fatalf("key %q: %+v, %v; want %+v", c.key, r.ans, r.err, c.want)
		}
		if !hold.TryLock() {
			t.Fatal("the hold is still taken after the prompt")
		}
		hold.Unlock()
	}
	// The terminal's canonical mode and echo are back.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil || tio.Lflag&unix.ICANON == 0 || tio.Lflag&unix.ECHO == 0 || tio.Lflag&unix.ISIG == 0 {
		t.Fatalf("terminal modes after the prompts: %+v, %v", tio, err)
	}
}

func TestAskTerminalTimeoutDenies(t *testing.T) {
	m, path := askPTY(t)
	old := askTerminalPath
	askTerminalPath = path
	t.Cleanup(func() { askTerminalPath = old })
	p, closer, err := openAskTerminal(150*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	go func() { _, _ = readUntilQuiet(m) }() // keep the output flowing
	ans, err := p.Decide(context.Background(), askQuestion)
	if err == nil || ans.Allow || !strings.Contains(err.Error(), "no answer within 150ms") {
		t.Fatalf("Decide = %+v, %v; want a timeout", ans, err)
	}
}

func TestAskTerminalNotATerminal(t *testing.T) {
	old := askTerminalPath
	askTerminalPath = "/dev/null"
	t.Cleanup(func() { askTerminalPath = old })
	if _, _, err := openAskTerminal(time.Second, nil); err == nil || !strings.Contains(err.Error(), "not a terminal") {
		t.Fatalf("openAskTerminal(/dev/null) = %v", err)
	}
}

// readUntilQuiet drains m until it fails.
func readUntilQuiet(m *os.File) (int, error) {
	buf := make([]byte, 1024)
	total := 0
	for {
		n, err := m.Read(buf)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// TestAskNamesWhoAsks: the --ask prompt of sandgate run names CMD, that of
// sandgate proxy (no CMD, any client of the proxy) "a client".
func TestAskNamesWhoAsks(t *testing.T) {
	_, path := askPTY(t)
	old := askTerminalPath
	askTerminalPath = path
	t.Cleanup(func() { askTerminalPath = old })
	for _, c := range []struct {
		inRun bool
		who   string
	}{{false, "a client"}, {true, ""}} {
		d := &decideFlags{ask: true, inRun: c.inRun}
		dec, err := d.decider()
		if err != nil {
			t.Fatal(err)
		}
		p, ok := dec.(*decide.Prompt)
		if !ok {
			t.Fatalf("decider %T, want a *decide.Prompt", dec)
		}
		if p.Who != c.who {
			t.Errorf("inRun %v: Who %q, want %q", c.inRun, p.Who, c.who)
		}
		d.close()
	}
}

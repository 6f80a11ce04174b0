//go:build linux

package sandbox

import (
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTerminalInputHold checks Spec.InputHold: while it is held, keys typed
// on the user's terminal are not relayed to CMD's pty (the holder reads
// them itself); once released, they are again.
func TestTerminalInputHold(t *testing.T) {
	userM, userS, err := openPTY() // the user's terminal
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { userM.Close(); userS.Close() })
	term, err := newTerminal(userS, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	hold := &sync.Mutex{}
	term.hold = hold
	cmdSide := term.slave // CMD's end of its pty, kept open here
	term.wg.Add(1)
	go func() {
		defer term.wg.Done()
		term.relayInput()
	}()
	t.Cleanup(func() {
		_, _ = unix.Write(term.stopW, []byte{0})
		term.wg.Wait()
		term.restore()
		term.closeAll()
	})
	readCMD := func(d time.Duration) string { // the slave is not pollable by Go: poll here
		fds := []unix.PollFd{{Fd: int32(fileFD(cmdSide)), Events: unix.POLLIN}}
		if n, _ := unix.Poll(fds, int(d/time.Millisecond)); n == 0 {
			return ""
		}
		buf := make([]byte, 64)
		n, _ := unix.Read(fileFD(cmdSide), buf)
		return string(buf[:max(n, 0)])
	}

	hold.Lock()
	if _, err := userM.Write([]byte("secret\n")); err != nil {
		t.Fatal(err)
	}
	if got := readCMD(200 * time.Millisecond); got != "" {
		t.Fatalf("CMD read %q while the input was held", got)
	}
	// The holder reads the keys itself.
	fds := []unix.PollFd{{Fd: int32(fileFD(userS)), Events: unix.POLLIN}}
	if n, _ := unix.Poll(fds, 5000); n == 0 {
		t.Fatal("the keys are not on the user's terminal for the holder")
	}
	buf := make([]byte, 64)
	n, err := unix.Read(fileFD(userS), buf)
	if err != nil || !strings.HasPrefix(string(buf[:max(n, 0)]), "secret") {
		t.Fatalf("the holder read %q, %v", buf[:max(n, 0)], err)
	}
	hold.Unlock()
	if _, err := userM.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	if got := readCMD(5 * time.Second); !strings.HasPrefix(got, "after") {
		t.Fatalf("CMD read %q after the hold, want the new keys only", got)
	}
}

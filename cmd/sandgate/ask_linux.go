//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/decide"
)

// openAskTerminal opens sandgate's controlling terminal for --ask and
// returns the prompt that asks on it.
//
// The terminal is opened anew (not stdin), non-blocking, so that a prompt
// that times out never leaves a read behind that would take a later key.
// Each prompt takes hold (the relay of the terminal to CMD's pty pauses
// while it is held, see sandbox.Spec.InputHold), drops the keys typed before
// the question appeared (they were meant for CMD), and reads single keys
// without echo (switching a canonical terminal, as when CMD does not get a
// pty, to single keys for the prompt only).
func openAskTerminal(timeout time.Duration, hold *sync.Mutex) (*decide.Prompt, io.Closer, error) {
	fd, err := unix.Open(askTerminalPath, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", askTerminalPath, err)
	}
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("%s is not a terminal: %w", askTerminalPath, err)
	}
	tty := os.NewFile(uintptr(fd), askTerminalPath)
	p := &decide.Prompt{In: tty, Out: tty, Timeout: timeout, Begin: func() (func(), error) {
		return beginPrompt(fd, hold)
	}}
	return p, tty, nil
}

// beginPrompt takes the terminal for one prompt and returns its undo.
func beginPrompt(fd int, hold *sync.Mutex) (func(), error) {
	if hold != nil {
		hold.Lock()
	}
	release := func() {
		if hold != nil {
			hold.Unlock()
		}
	}
	if err := unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH); err != nil {
		release()
		return nil, fmt.Errorf("dropping earlier keys: %w", err)
	}
	saved, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		release()
		return nil, fmt.Errorf("reading the terminal's modes: %w", err)
	}
	if saved.Lflag&(unix.ICANON|unix.ECHO) == 0 {
		return release, nil // already single keys (CMD's pty relay made it raw)
	}
	keys := *saved
	keys.Lflag &^= unix.ICANON | unix.ECHO | unix.ISIG // Ctrl-C answers (deny) rather than interrupts
	keys.Cc[unix.VMIN], keys.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &keys); err != nil {
		release()
		return nil, fmt.Errorf("switching the terminal to single keys: %w", err)
	}
	return func() {
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, saved)
		release()
	}, nil
}

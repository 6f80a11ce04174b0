//go:build !linux

package main

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/sandgate/sandgate/decide"
)

// openAskTerminal is Linux-only for now.
func openAskTerminal(time.Duration, *sync.Mutex) (*decide.Prompt, io.Closer, error) {
	return nil, nil, errors.New("--ask is available on Linux only so far")
}

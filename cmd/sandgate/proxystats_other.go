//go:build !unix

package main

import (
	"io"

	"github.com/sandgate/sandgate/proxy"
)

// statsOnSignal does nothing where there is no SIGUSR1.
func statsOnSignal(*proxy.Server, io.Writer) (stop func()) { return func() {} }

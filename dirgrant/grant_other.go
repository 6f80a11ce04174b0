//go:build !linux && !windows

package dirgrant

import (
	"errors"
	"fmt"
	"runtime"
)

var errUnsupported = fmt.Errorf("directory grants are not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Grant is one run's grant on a directory (none on this platform).
type Grant struct{}

// Recorded reports false: nothing is granted on this platform.
func (g *Grant) Recorded() bool { return false }

// Grant is not implemented on this platform.
func (r Records) Grant(dir string, to Grantee) (*Grant, error) { return nil, errUnsupported }

// Release does nothing on this platform.
func (g *Grant) Release(keep bool, logf func(string, ...any)) error { return nil }

// Leftovers finds nothing on this platform.
func (r Records) Leftovers() ([]Leftover, error) { return nil, nil }

// Repair has nothing to repair on this platform.
func (r Records) Repair(logf func(string, ...any)) ([]Leftover, error) { return nil, nil }

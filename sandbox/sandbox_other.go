//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"runtime"
)

// Run is not supported on this platform yet; it returns an error wrapping
// ErrUnavailable without running anything.
func Run(ctx context.Context, spec Spec) (Result, error) {
	return Result{}, fmt.Errorf("sandbox: %w: not supported on this platform (%s) yet; sandgate run needs Linux", ErrUnavailable, runtime.GOOS)
}

// MaybeInit returns immediately on this platform: there is no sandbox init.
func MaybeInit() {}

//go:build !linux && !windows

package sandbox

import (
	"context"
	"fmt"
	"runtime"
)

// Run is not supported on this platform yet; it returns an error wrapping
// ErrUnavailable without running anything.
func Run(ctx context.Context, spec Spec) (Result, error) {
	name := runtime.GOOS
	if name == "darwin" {
		name = "macOS"
	}
	return Result{}, fmt.Errorf("sandbox: %w: %s is not supported yet; sandgate run needs Linux or Windows", ErrUnavailable, name)
}

// MaybeInit returns immediately on this platform: there is no sandbox init.
func MaybeInit() {}

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

// InitMain returns ok false on this platform: Run never re-executes
// sandgate here.
func InitMain([]string) (code int, ok bool) { return 0, false }

//go:build !linux && !windows

package sandbox

import (
	"context"
	"runtime"
)

// Run is not supported on this platform yet; it returns an error wrapping
// an *UnavailableError without running anything.
func Run(ctx context.Context, spec Spec) (Result, error) {
	name := runtime.GOOS
	if name == "darwin" {
		name = "macOS"
	}
	return Result{}, runError(&UnavailableError{Reason: name + " is not supported yet", Fix: "sandgate run needs Linux or Windows"})
}

// InitMain returns ok false on this platform: Run never re-executes
// sandgate here.
func InitMain([]string) (code int, ok bool) { return 0, false }

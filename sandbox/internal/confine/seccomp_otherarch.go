//go:build linux && !amd64 && !arm64

package confine

import (
	"fmt"
	"runtime"
)

// seccompABIs fails on architectures whose system call numbers the filter
// does not know yet: the sandbox is not set up without its filter.
func seccompABIs() ([]abiRules, error) {
	return nil, fmt.Errorf("%w: the seccomp filter does not support %s yet", ErrUnsupported, runtime.GOARCH)
}

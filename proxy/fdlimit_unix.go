//go:build linux || darwin

package proxy

import (
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// descriptorLimit raises the soft RLIMIT_NOFILE to the hard limit when it is
// lower, and returns the soft limit then in force and how many descriptors
// the process has open. Go's runtime already raises the soft limit to one
// below the hard limit at start and restores the original for child
// processes; a limit it raised is left as it is, because setting it again
// would make commands sandgate starts inherit the raised limit.
func descriptorLimit() (limit, open int, err error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if lim.Max != unix.RLIM_INFINITY && lim.Cur+1 < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	limit = math.MaxInt32
	if lim.Cur < uint64(limit) {
		limit = int(lim.Cur)
	}
	return limit, openDescriptors(), nil
}

// openDescriptors counts the process's open descriptors (0 when it cannot).
func openDescriptors() int {
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		f, err := os.Open(dir)
		if err != nil {
			continue
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err == nil && len(names) > 0 {
			return len(names) - 1 // the directory's own descriptor
		}
	}
	return 0
}

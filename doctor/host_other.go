//go:build !linux

package doctor

import "runtime"

// NoopRole is the argv[1] under which the sandgate binary exits 0 at once.
const NoopRole = "__doctor-noop"

func hostChecks() []Check {
	return []Check{{Name: "platform", Required: false,
		Detail: "the host checks are written for Linux; on " + runtime.GOOS + " only the proof below runs"}}
}

// NoopMain exits 0 at once when args[1] is NoopRole.
func NoopMain(args []string) (code int, ok bool) {
	if len(args) >= 2 && args[1] == NoopRole {
		return 0, true
	}
	return 0, false
}

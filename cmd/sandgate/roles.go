package main

import (
	"github.com/sandgate/sandgate/doctor"
	"github.com/sandgate/sandgate/sandbox"
)

// hiddenRole runs the role in which sandgate re-executed itself, when args
// (this process's argv) name one, and returns its exit status; ok is false
// for an ordinary invocation. The roles, all reached before any flag is
// parsed:
//   - the sandbox's own process (sandbox.InitMain): the PID-1 init of a
//     Linux sandbox, the launcher a Windows run starts as the sandbox user;
//   - the elevated setup helper on Windows (setup.ElevatedMain);
//   - the probes of `sandgate doctor` (doctor.ProbeMain inside its sandbox,
//     doctor.NoopMain in the namespaces it tries).
func hiddenRole(args []string) (code int, ok bool) {
	if code, ok := sandbox.InitMain(args); ok {
		return code, true
	}
	if code, ok := doctor.ProbeMain(args); ok {
		return code, true
	}
	if code, ok := doctor.NoopMain(args); ok {
		return code, true
	}
	return elevatedSetup(args)
}

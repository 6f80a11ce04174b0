package sandbox

import "os"

// MaybeInit is for programs that embed this package (and TestMain of tests
// that run sandboxes with the test binary as Spec.Executable): called
// first thing in main, it runs the sandbox's own process and exits when
// Run re-executed this binary as one (see InitMain), and returns at once
// otherwise. The sandgate command dispatches its hidden roles itself.
func MaybeInit() {
	if code, ok := InitMain(os.Args); ok {
		os.Exit(code)
	}
}

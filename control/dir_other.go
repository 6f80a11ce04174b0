//go:build !unix

package control

// Dir returns the directory of the caller's control sockets; on this system
// there is none.
func Dir() (string, error) { return "", ErrUnsupported }

// EnsureDir creates and checks the control socket directory; on this system
// it always fails.
func EnsureDir(dir string) error { return ErrUnsupported }

// checkDir checks the control socket directory; on this system it always fails.
func checkDir(dir string) error { return ErrUnsupported }

package sandbox

import (
	"errors"
	"strings"
)

// A bridge to code that still speaks the old way and is being moved out of
// this package: the identity setup's checks and their lock (identity
// setup, Linux and Windows), the proxy credentials and the reserved ports
// on Windows. Those functions prefix their errors with "sandbox: " and
// print their one-line notice to an io.Writer. When their call sites
// switch to the setup lease and proxyenv, this file goes.

// adopt turns an error of that code into one of this package's: an
// *UnavailableError when it wraps ErrUnavailable, its text without the
// package prefix (which runError adds) otherwise.
func adopt(err error) error {
	if err == nil {
		return nil
	}
	msg, prefixed := strings.CutPrefix(err.Error(), "sandbox: ")
	if reason, ok := strings.CutPrefix(msg, ErrUnavailable.Error()+": "); ok && errors.Is(err, ErrUnavailable) {
		return &UnavailableError{Reason: reason, Err: err}
	}
	if !prefixed {
		return err
	}
	return &adoptedError{msg: msg, err: err}
}

// adoptedError is an adopted error's text without the prefix.
type adoptedError struct {
	msg string
	err error
}

func (e *adoptedError) Error() string { return e.msg }
func (e *adoptedError) Unwrap() error { return e.err }

// notifyWriter hands the "sandgate: ..." lines that code writes to
// Spec.Notify, one message a line.
type notifyWriter struct{ notify func(string) }

func (w notifyWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
		w.notify(strings.TrimPrefix(line, "sandgate: "))
	}
	return len(p), nil
}

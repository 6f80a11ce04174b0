package sandbox

import (
	"errors"
	"fmt"

	"github.com/sandgate/sandgate/setup"
)

// ErrUnavailable is matched (errors.Is) by the errors Run returns when the
// sandbox's enforcement cannot be set up on this machine or for this run
// (namespaces refused, missing kernel features, no usable setup). Such
// errors are *UnavailableError, which says why and what to do.
var ErrUnavailable = errors.New("sandbox enforcement unavailable")

// UnavailableError says why the sandbox's enforcement cannot be set up and
// what to do about it. Run's error wraps it (errors.As); errors.Is(err,
// ErrUnavailable) holds for it. Its text is "sandbox enforcement
// unavailable: REASON; FIX".
type UnavailableError struct {
	Reason string // why, e.g. "this kernel has no Landlock (CONFIG_SECURITY_LANDLOCK)"
	Fix    string // what to do, e.g. "use --backend netns"; "" when there is no advice
	Err    error  // the failure behind it, if any
}

// Error returns the text: ErrUnavailable's, the reason and the fix.
func (e *UnavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.detail() }

// detail is the reason and the fix.
func (e *UnavailableError) detail() string {
	if e.Fix == "" {
		return e.Reason
	}
	return e.Reason + "; " + e.Fix
}

// Is makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the failure behind it.
func (e *UnavailableError) Unwrap() error { return e.Err }

// describe is err as a part of a longer message: an UnavailableError's
// reason and fix, any other error's text.
func describe(err error) string {
	var ue *UnavailableError
	if errors.As(err, &ue) && error(ue) == err {
		return ue.detail()
	}
	return err.Error()
}

// setupError is an error of package setup as a run returns it: an
// *UnavailableError wrapping it when the installed setup cannot serve the
// run (*setup.UnavailableError, whose text says why and which command
// fixes it), err itself otherwise.
func setupError(err error) error {
	var ue *setup.UnavailableError
	if errors.As(err, &ue) {
		return &UnavailableError{Reason: err.Error(), Err: err}
	}
	return err
}

// runError is an error as Run returns it: with the package's prefix,
// added here and nowhere else.
func runError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sandbox: %w", err)
}

// notStartedError marks a failure that happened before CMD could have run,
// so that BackendAuto may try the next backend. CMD never runs twice.
type notStartedError struct{ err error }

func (e *notStartedError) Error() string { return e.err.Error() }
func (e *notStartedError) Unwrap() error { return e.err }

// unwrapNotStarted returns the error inside a notStartedError.
func unwrapNotStarted(err error) error {
	var ns *notStartedError
	if errors.As(err, &ns) && err == error(ns) {
		return ns.err
	}
	return err
}

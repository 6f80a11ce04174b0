package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/sandgate/sandgate/setup"
)

func TestUnavailableError(t *testing.T) {
	cause := fs.ErrPermission
	ue := &UnavailableError{Reason: "no namespaces here", Fix: "use the identity backend", Err: cause}
	err := runError(&notStartedError{ue})
	if got, want := err.Error(), "sandbox: sandbox enforcement unavailable: no namespaces here; use the identity backend"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	var got *UnavailableError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &got) || got != ue || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("%v: Is(ErrUnavailable) %v, As %v, Is(cause) %v", err, errors.Is(err, ErrUnavailable), errors.As(err, &got), errors.Is(err, fs.ErrPermission))
	}
	if s := (&UnavailableError{Reason: "just why"}).Error(); s != "sandbox enforcement unavailable: just why" {
		t.Errorf("without a fix: %q", s)
	}
	if runError(nil) != nil {
		t.Error("runError(nil) != nil")
	}
	plain := errors.New("working directory: gone")
	if errors.Is(runError(plain), ErrUnavailable) || runError(plain).Error() != "sandbox: working directory: gone" {
		t.Errorf("a plain error: %v", runError(plain))
	}
}

// TestDescribe: the parts of a combined message say why without repeating
// "sandbox enforcement unavailable".
func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&UnavailableError{Reason: "r", Fix: "f"}, "r; f"},
		{errors.New("granting the sandbox group access to /x: EPERM"), "granting the sandbox group access to /x: EPERM"},
		{fmt.Errorf("context: %w", &UnavailableError{Reason: "r"}), "context: sandbox enforcement unavailable: r"},
	} {
		if got := describe(c.err); got != c.want {
			t.Errorf("describe(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestSetupError: the setup lease's refusals come out as this package's
// UnavailableError, with the lease's text after the prefix once; other
// errors of package setup are left as they are.
func TestSetupError(t *testing.T) {
	l := setup.Leaser{Options: setup.Options{StateDir: filepath.Join(t.TempDir(), "none")}}
	cause := l.CheckUnprivileged(setup.Need{})
	var sue *setup.UnavailableError
	if !errors.As(cause, &sue) {
		t.Fatalf("CheckUnprivileged without a setup: %v", cause)
	}
	err := runError(setupError(cause))
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Reason != cause.Error() || err.Error() != "sandbox: sandbox enforcement unavailable: "+cause.Error() ||
		!errors.Is(err, setup.ErrNotInstalled) || !errors.As(err, &sue) {
		t.Errorf("a refusal of the lease: %q (%+v)", err, ue)
	}
	plain := fmt.Errorf("creating /run/sandgate: %w", fs.ErrPermission)
	if err := setupError(plain); err != plain || errors.Is(err, ErrUnavailable) {
		t.Errorf("a plain error of package setup: %v", err)
	}
	if setupError(nil) != nil {
		t.Error("setupError(nil) != nil")
	}
}

package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
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

// TestAdopt: errors of the code that still prefixes by hand come out as
// this package's, so that runError's prefix is the only one.
func TestAdopt(t *testing.T) {
	legacy := fmt.Errorf("sandbox: %w: the identity backend is not set up (no /x): run `sandgate setup` first", ErrUnavailable)
	err := runError(adopt(legacy))
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Reason != "the identity backend is not set up (no /x): run `sandgate setup` first" ||
		err.Error() != legacy.Error() {
		t.Errorf("adopted unavailable error: %q (%+v)", err, ue)
	}
	cause := fs.ErrNotExist
	prefixed := fmt.Errorf("sandbox: creating /run/sandgate: %w", cause)
	if err := runError(adopt(prefixed)); err.Error() != prefixed.Error() || !errors.Is(err, cause) || errors.Is(err, ErrUnavailable) {
		t.Errorf("adopted plain error: %q", err)
	}
	bare := fmt.Errorf("%w: all reserved ports are in use", ErrUnavailable)
	if err := runError(adopt(bare)); err.Error() != "sandbox: "+bare.Error() || !errors.As(err, &ue) {
		t.Errorf("adopted unprefixed error: %q", err)
	}
	if adopt(nil) != nil {
		t.Error("adopt(nil) != nil")
	}
}

func TestNotifyWriter(t *testing.T) {
	var got []string
	w := notifyWriter{func(m string) { got = append(got, m) }}
	fmt.Fprintf(w, "sandgate: reconciled the identity setup: %s\n", "the firewall rules were missing")
	fmt.Fprint(w, "sandgate: one\nsandgate: two\n")
	want := []string{"reconciled the identity setup: the firewall rules were missing", "one", "two"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages %q, want %q", got, want)
	}
}

package fsview

import (
	"errors"
	"fmt"
)

// ErrorKind says what is wrong with a path of a Profile.
type ErrorKind int

const (
	// NotAbsolute: a relative path where only an absolute one (or one
	// starting with "~/") is accepted.
	NotAbsolute ErrorKind = iota + 1
	// NotExist: a path that must exist does not (or cannot be resolved).
	NotExist
	// NotDirectory: the workspace is not a directory.
	NotDirectory
	// InsideNeverWritable: a writable root at or below a never-writable
	// path.
	InsideNeverWritable
	// ContainsHome: a writable root that is the home directory or
	// contains it (every file that runs code at login would be writable).
	ContainsHome
	// WholeFileSystem: "/" as a writable root.
	WholeFileSystem
	// InvalidProfile: a profile field that makes no sense for the mode.
	InvalidProfile
)

// PathError is a path of the profile that cannot be planned. The command
// line exits 2 on it, naming Field and Path.
type PathError struct {
	// Field is the profile field the path came from: "workspace",
	// "write", "hide", "unhide", "home", "tmpdir", "fresh_home", ...
	Field string
	// Path is the path as given.
	Path string
	Kind ErrorKind
	// Detail says more (e.g. which never-writable path it is inside).
	Detail string
	// Err is the underlying error, if any.
	Err error
}

// Error says which field and path, and what is wrong with it.
func (e *PathError) Error() string {
	msg := fmt.Sprintf("%s %s: ", e.Field, e.Path)
	switch e.Kind {
	case NotAbsolute:
		msg += "not an absolute path (nor one starting with ~/)"
	case NotExist:
		msg += "does not exist"
	case NotDirectory:
		msg += "not a directory"
	case InsideNeverWritable:
		msg += "inside a path that is never writable"
	case ContainsHome:
		msg += "is or contains the home directory, where every shell startup file, tool and credential would be writable; use a project directory"
	case WholeFileSystem:
		msg += "the whole file system cannot be writable; use --fs host for no file system restriction"
	default:
		msg += "invalid"
	}
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error (nil for most kinds).
func (e *PathError) Unwrap() error { return e.Err }

// ErrUnavailable is wrapped by every error saying that the kernel cannot
// enforce the view asked for (no Landlock, no unprivileged overlayfs, no
// new mount API). The view is then not applied at all: the run must fail
// rather than go on with less.
var ErrUnavailable = errors.New("file system view unavailable")

// UnavailableError says which part of the view the kernel refused and what
// to do about it. It wraps ErrUnavailable and the kernel's error.
type UnavailableError struct {
	What string // what could not be set up, e.g. "the copy-on-write home (overlayfs)"
	Hint string // what to do, e.g. "use Linux 5.11 or later, or --fs readonly"
	Err  error
}

// Error says what could not be enforced, why, and what to do.
func (e *UnavailableError) Error() string {
	msg := "cannot enforce the file system view: " + e.What
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Unwrap returns ErrUnavailable and the kernel's error.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

package config

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/sandgate/sandgate/envfilter"
	"github.com/sandgate/sandgate/fsview"
)

// Filesystem is the [filesystem] table: the command's view of the file
// system (package fsview).
type Filesystem struct {
	// Mode is "workspace" (the default), "readonly" or "host".
	Mode string `toml:"mode"`
	// Workspace is the writable project directory ("" = the working
	// directory).
	Workspace string `toml:"workspace"`
	// Write are more writable paths.
	Write []string `toml:"write"`
	// DenyRead are more hidden paths (besides the credential stores).
	DenyRead []string `toml:"deny_read"`
	// AllowRead are paths made visible again.
	AllowRead []string `toml:"allow_read"`
}

// Environment is the [environment] table.
type Environment struct {
	// Keep are secret-looking variables passed to the command anyway:
	// names, or prefixes ending in "*" (package envfilter).
	Keep []string `toml:"keep"`
}

// errRelative is the error for a relative path in the file, where it
// would be ambiguous (relative to what?).
var errRelative = errors.New("must be an absolute path or start with ~/")

// checkPath accepts absolute paths and "~", "~/...".
func checkPath(p string) error {
	if p == "~" || strings.HasPrefix(p, "~/") || path.IsAbs(p) {
		return nil
	}
	return errRelative
}

// validateFilesystem checks [filesystem], network.allow_unix_sockets and
// [environment].
func (f *File) validateFilesystem() error {
	fs := f.Filesystem
	if fs.Mode != "" {
		if _, err := fsview.ParseMode(fs.Mode); err != nil {
			return &Error{Path: f.Path, Line: f.lineOfKey("mode"), Entry: "filesystem.mode", Err: err}
		}
	}
	if fs.Workspace != "" {
		if err := checkPath(fs.Workspace); err != nil {
			return &Error{Path: f.Path, Line: f.lineOfKey("workspace"), Entry: fs.Workspace, Err: fmt.Errorf("in filesystem.workspace: %w", err)}
		}
	}
	lists := []struct {
		key     string
		entries []string
		check   func(string) error
	}{
		{"filesystem.write", fs.Write, checkPath},
		{"filesystem.deny_read", fs.DenyRead, checkPath},
		{"filesystem.allow_read", fs.AllowRead, checkPath},
		{"network.allow_unix_sockets", f.Network.AllowUnixSockets, checkPath},
		{"environment.keep", f.Environment.Keep, envfilter.CheckKeep},
	}
	for _, l := range lists {
		for _, e := range l.entries {
			if err := l.check(e); err != nil {
				return &Error{Path: f.Path, Line: f.lineOfValue(e), Entry: e, Err: fmt.Errorf("in %s: %w", l.key, err)}
			}
		}
	}
	return nil
}

// FilesystemFlags are the command-line additions: --fs and --workspace
// replace the file's mode and workspace; the lists add to the file's.
type FilesystemFlags struct {
	Mode      string   // --fs ("" = the file's)
	Workspace string   // --workspace ("" = the file's)
	Write     []string // --write
	Hide      []string // --hide
	Unhide    []string // --unhide
}

// View is the merged file system view settings, for fsview.Profile.
type View struct {
	Mode      fsview.Mode
	Workspace string   // "" = the working directory
	Write     []string // file entries first, then flags
	Hide      []string
	Unhide    []string
}

// View merges the [filesystem] table with the flags. The only error is a
// bad --fs value (the file's was checked by Parse).
func (f *File) View(o FilesystemFlags) (View, error) {
	v := View{
		Workspace: f.Filesystem.Workspace,
		Write:     append(append([]string(nil), f.Filesystem.Write...), o.Write...),
		Hide:      append(append([]string(nil), f.Filesystem.DenyRead...), o.Hide...),
		Unhide:    append(append([]string(nil), f.Filesystem.AllowRead...), o.Unhide...),
	}
	if o.Workspace != "" {
		v.Workspace = o.Workspace
	}
	mode := f.Filesystem.Mode
	if o.Mode != "" {
		mode = o.Mode
	}
	if mode != "" {
		m, err := fsview.ParseMode(mode)
		if err != nil {
			return View{}, fmt.Errorf("--fs: %w", err)
		}
		v.Mode = m
	}
	return v, nil
}

// UnixSockets returns network.allow_unix_sockets followed by the
// --allow-unix-socket flags.
func (f *File) UnixSockets(flags []string) []string {
	return append(append([]string(nil), f.Network.AllowUnixSockets...), flags...)
}

// KeepEnv returns environment.keep followed by the --env flags.
func (f *File) KeepEnv(flags []string) []string {
	return append(append([]string(nil), f.Environment.Keep...), flags...)
}

// PathError locates a problem with a path that came from the file's key
// (e.g. "filesystem.write", found by fsview.NewPlan) in the file's error
// style, with its line. Paths the file does not hold give err unchanged.
func (f *File) PathError(key, value string, err error) error {
	if f.Path == "" {
		return err
	}
	var in []string
	switch key {
	case "filesystem.write":
		in = f.Filesystem.Write
	case "filesystem.deny_read":
		in = f.Filesystem.DenyRead
	case "filesystem.allow_read":
		in = f.Filesystem.AllowRead
	case "filesystem.workspace":
		if value == f.Filesystem.Workspace {
			return &Error{Path: f.Path, Line: f.lineOfKey("workspace"), Entry: value, Err: fmt.Errorf("in %s: %w", key, err)}
		}
	case "network.allow_unix_sockets":
		in = f.Network.AllowUnixSockets
	}
	for _, e := range in {
		if e == value {
			return &Error{Path: f.Path, Line: f.lineOfValue(value), Entry: value, Err: fmt.Errorf("in %s: %w", key, err)}
		}
	}
	return err
}

// ExpandHome replaces a leading "~" or "~/" of p with home.
func ExpandHome(p, home string) string {
	if p == "~" {
		return home
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return path.Join(home, rest)
	}
	return p
}

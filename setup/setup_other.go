//go:build !linux && !windows

package setup

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/sandgate/sandgate/dirgrant"
	"github.com/sandgate/sandgate/ruleplan"
)

// This file stands in for the platform layer where there is none yet. The
// signatures are those of setup_linux.go.

var errUnsupported = fmt.Errorf("the identity backend's setup is not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Account is a sandbox user as an identity run needs it.
type Account struct {
	Name string
	UID  uint32
	GID  uint32
	Home string
}

// MarkerPath returns the path of the setup marker for o.
func (o Options) MarkerPath() string { return filepath.Join(o.StateDir, "setup.json") }

// GrantRecords returns where identity runs record their working-directory
// grants: nowhere on this platform.
func (o Options) GrantRecords() dirgrant.Records { return dirgrant.Records{} }

// Install is not implemented on this platform.
func Install(o Options) (Marker, []string, error) { return Marker{}, nil, errUnsupported }

// Reconcile is not implemented on this platform.
func Reconcile(o Options) (Marker, []string, error) { return Marker{}, nil, errUnsupported }

// Check is not implemented on this platform.
func Check(o Options) ([]string, error) { return nil, errUnsupported }

// Status is not implemented on this platform.
func Status(o Options) (Marker, []string, error) { return Marker{}, nil, errUnsupported }

// Identity is not implemented on this platform.
func Identity(o Options, m Marker, id ruleplan.Identity) (Account, error) {
	return Account{}, errUnsupported
}

// Uninstall is not implemented on this platform.
func Uninstall(o Options) ([]string, error) { return nil, errUnsupported }

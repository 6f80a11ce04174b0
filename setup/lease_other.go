//go:build !linux && !windows

package setup

import (
	"os"
	"syscall"
)

const installsOnDemand = false

func defaultLockDir(o Options) string { return o.StateDir }

func prepareLockDir(string) error { return errUnsupported }

func openLock(string) (*os.File, error) { return nil, errUnsupported }

func lockExclusive(*os.File) error { return errUnsupported }

func lockShared(*os.File) error { return errUnsupported }

func tryLockExclusive(*os.File) (bool, error) { return false, errUnsupported }

func reconcileNotify(Options, func(string)) (Marker, []string, error) {
	return Marker{}, nil, errUnsupported
}

func proxyListenControl(string, string, syscall.RawConn) error { return errUnsupported }

func portTaken(error) bool { return false }

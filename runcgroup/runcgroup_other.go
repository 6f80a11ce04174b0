//go:build !linux

package runcgroup

import "errors"

// DefaultParent is the directory, under the cgroup v2 mount, that holds the
// runs' cgroups.
const DefaultParent = "sandgate"

// Group is one run's cgroup; only Linux has them.
type Group struct {
	Path  string
	ID    uint64
	Level uint32
}

// Create fails: only Linux has cgroups.
func Create(parent, prefix string) (*Group, error) {
	return nil, errors.New("runcgroup: cgroups exist only on Linux")
}

// FD returns -1.
func (g *Group) FD() int { return -1 }

// Remove does nothing.
func (g *Group) Remove() error { return nil }

// Package dirgrant gives the sandbox group access to an identity run's
// working directory for the life of the run, and takes it back afterwards,
// with the same API on every platform:
//
//	g, err := dirgrant.Records{}.Grant(dir, dirgrant.Grantee{...})
//	...
//	err = g.Release(keep, logf)
//
// On Linux the grant is a named-group entry (rwx) in the directory's POSIX
// access ACL, written through its extended attribute (the codec, ACL, is
// pure and untagged). Runs sharing a directory share its grant: the first
// records the directory's previous ACL and mode in a root-only record file
// (Records.Dir), every run holds a shared lock on the record while it runs,
// and the last to leave restores the previous state exactly. A run that
// dies leaves its record unlocked: Leftovers finds such records whatever
// directory the caller runs in, and Repair restores what they recorded.
//
// On Windows the grant is an inherited allow entry (modify) for the sandbox
// group in the directory's DACL (package winsec), removed by Release when
// the grant added it; nothing is recorded, so Leftovers and Repair find
// nothing there.
package dirgrant

import "fmt"

// DefaultDir is where grants are recorded on Linux when Records.Dir is
// empty: under setup's state directory, which survives reboots.
const DefaultDir = "/var/lib/sandgate/dir-grants"

// Records says where grants are recorded. The zero value is the product's
// default (DefaultDir); tests use a directory of their own.
type Records struct {
	// Dir holds one record file per granted directory (Linux). It must be
	// owned by the caller (root) and writable by nobody else: Repair
	// restores, as root, what its records say.
	Dir string
}

func (r Records) dir() string {
	if r.Dir == "" {
		return DefaultDir
	}
	return r.Dir
}

// Grantee is the sandbox identity a grant gives access to.
type Grantee struct {
	// UID and GID (Linux): the sandbox user, whose access decides whether
	// a grant is needed at all, and the sandbox group, which is granted
	// rwx.
	UID, GID uint32
	// GroupSID (Windows): the sandbox group, which is granted modify
	// rights inherited by the directory's files and subdirectories.
	GroupSID string
}

// Leftover is a grant whose runs all ended without taking it back (they
// were killed, or the machine stopped): its record is held by no run.
type Leftover struct {
	Dir    string // the granted directory, as the run named it
	Record string // the record file
	// Kept: a run asked for the grant to stay (--keep-dir-grant); Repair
	// then removes only the record, not the grant.
	Kept bool
}

// String describes the leftover for a message.
func (l Leftover) String() string {
	if l.Kept {
		return fmt.Sprintf("the record %s of the sandbox group's kept access to %s, left by an identity run that did not end cleanly", l.Record, l.Dir)
	}
	return fmt.Sprintf("the sandbox group's access to %s, granted by an identity run that did not end cleanly (recorded in %s)", l.Dir, l.Record)
}

//go:build windows

package dirgrant

import "github.com/sandgate/sandgate/winsec"

// Grant is one run's grant on a directory.
type Grant struct {
	path, sid string
	added     bool // the grant added the entry, so Release removes it
}

// Recorded reports whether Release will take the grant back (false when
// the group had the access already, or after Release).
func (g *Grant) Recorded() bool { return g != nil && g.added }

// Grant gives the sandbox group to.GroupSID modify rights on dir (an
// absolute path), inherited by its files and subdirectories, unless it has
// them already (winsec.GrantDir). Call Release when the run ends.
func (r Records) Grant(dir string, to Grantee) (*Grant, error) {
	added, err := winsec.GrantDir(dir, to.GroupSID)
	if err != nil {
		return nil, err
	}
	return &Grant{path: dir, sid: to.GroupSID, added: added}, nil
}

// Release removes the entry Grant added, unless keep is set. Releasing
// twice, or a nil grant, does nothing; logf is not used on Windows.
func (g *Grant) Release(keep bool, logf func(string, ...any)) error {
	if g == nil || !g.added {
		return nil
	}
	g.added = false
	if keep {
		return nil
	}
	return winsec.RevokeDir(g.path, g.sid)
}

// Leftovers finds nothing on Windows: grants are not recorded there.
func (r Records) Leftovers() ([]Leftover, error) { return nil, nil }

// Repair has nothing to repair on Windows: grants are not recorded there.
func (r Records) Repair(logf func(string, ...any)) ([]Leftover, error) { return nil, nil }

//go:build linux

package sandbox

import (
	"github.com/sandgate/sandgate/fsview"
)

// viewSupported says whether Run can apply Spec.View here.
const viewSupported = true

// planView plans spec.View for a run (nil, nil when there is none). For
// the identity backend, freshHome is the sandbox user's home and owner its
// uid and gid: the view gives it an empty private tmpfs there for the run,
// and owner owns the private temporary directories.
func planView(spec Spec, freshHome string, owner *fsview.Owner) (*fsview.Plan, error) {
	if spec.View == nil || spec.View.Mode == fsview.ModeHost {
		return nil, nil
	}
	pr := *spec.View
	if owner != nil {
		pr.FreshHome, pr.Owner = freshHome, owner
	}
	return fsview.NewPlan(pr, fsview.OSFS{})
}

// viewConfig is the plan as the init's configuration gets it (nil: none).
func viewConfig(p *fsview.Plan) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	return p.Marshal()
}

// viewChanged is what Result.ViewChanged says after the run.
func viewChanged(p *fsview.Plan) []string {
	if p == nil {
		return nil
	}
	return p.Changed(fsview.OSFS{})
}

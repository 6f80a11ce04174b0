//go:build linux

package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

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
	if wd := runDir(spec); wd != "" && underPrivateTmp(wd, pr) {
		// CMD's working directory stays where it is even when the view
		// gives the run a private /tmp over it (a CI checkout under /tmp
		// run with --workspace elsewhere): read-only unless a writable
		// root holds it.
		pr.Visible = append(slices.Clone(pr.Visible), wd)
	}
	return fsview.NewPlan(pr, fsview.OSFS{})
}

// runDir is CMD's working directory as an absolute path ("" when unknown).
func runDir(spec Spec) string {
	dir := spec.Dir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return ""
		}
		return wd
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	return abs
}

// underPrivateTmp reports whether dir lies in a directory the view makes
// private to the run (/tmp, /var/tmp, /dev/shm, $TMPDIR) and in no path
// the caller asked to hide.
func underPrivateTmp(dir string, pr fsview.Profile) bool {
	for _, h := range pr.Hide {
		if inDir(dir, h) {
			return false
		}
	}
	for _, t := range []string{"/tmp", "/var/tmp", "/dev/shm", pr.TmpDir} {
		if t != "" && inDir(dir, t) {
			return true
		}
	}
	return false
}

// inDir reports whether p is root or lies below it.
func inDir(p, root string) bool {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// viewConfig is the plan as the init's configuration gets it (nil: none).
func viewConfig(p *fsview.Plan) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	return p.Marshal()
}

// viewChanged is what Result.ViewChanged and Result.ViewFindings say after
// the run (fsview.Plan.AfterRun, on the host's view of the writable roots:
// the same directories CMD wrote). runUID is the uid CMD ran as: a hook is
// disarmed only when CMD (or sandgate's own uid) owns it.
func viewChanged(p *fsview.Plan, runUID int) ([]string, []fsview.Finding) {
	if p == nil {
		return nil, nil
	}
	uids := []int{os.Getuid(), runUID}
	return p.AfterRun(fsview.OSFS{}, func(path string) error { return fsview.Disarm(path, uids...) })
}

package fsview

import (
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// OpKind is the kind of one mount operation of a Plan.
type OpKind string

// The operations, in the order a plan uses them.
const (
	// OpCapture clones what is visible at Path now, with everything
	// mounted below it, and keeps the clone as ID (for OpBind and
	// OpOverlay), before later mounts cover Path.
	OpCapture OpKind = "capture"
	// OpReadOnlyAll makes every mount of the namespace read-only.
	OpReadOnlyAll OpKind = "readonly-all"
	// OpScratch mounts the applier's private staging tmpfs at Path (the
	// overlay's upper layer and the empty file live there); later mounts
	// cover it, and the command cannot reach it.
	OpScratch OpKind = "scratch"
	// OpOverlay builds an overlay whose lower layer is capture From and
	// whose upper layer is in the scratch tmpfs, and keeps it as ID.
	OpOverlay OpKind = "overlay"
	// OpTmpfs mounts an empty tmpfs at Path with Mode and Owner, after
	// creating Nodes in it (mount points of later operations);
	// ReadOnly makes it read-only.
	OpTmpfs OpKind = "tmpfs"
	// OpEmptyFile mounts an empty read-only file over the file Path.
	OpEmptyFile OpKind = "empty-file"
	// OpBind mounts capture From at Path; ReadOnly makes it read-only.
	OpBind OpKind = "bind"
	// OpPin binds Path over itself, so that it is a mount point: it can
	// no longer be renamed, removed or replaced.
	OpPin OpKind = "pin"
	// OpProtect binds Path read-only over itself (a mount point too).
	OpProtect OpKind = "protect"
)

// NodeType is the type of a mount point created in a fresh tmpfs.
type NodeType string

// Node types.
const (
	NodeDir     NodeType = "dir"
	NodeFile    NodeType = "file"
	NodeSymlink NodeType = "symlink"
)

// Node is a mount point (or a symbolic link) that OpTmpfs creates in its
// fresh tmpfs, with any missing parent directories.
type Node struct {
	Path   string   `json:"path"` // absolute, below the tmpfs's Path
	Type   NodeType `json:"type"`
	Target string   `json:"target,omitempty"` // NodeSymlink's target
}

// Op is one operation of a Plan.
type Op struct {
	Kind     OpKind `json:"kind"`
	Path     string `json:"path,omitempty"`
	ID       int    `json:"id,omitempty"`
	From     int    `json:"from,omitempty"`
	Mode     uint32 `json:"mode,omitempty"` // OpTmpfs: the root's mode, e.g. 0o1777
	Owner    *Owner `json:"owner,omitempty"`
	ReadOnly bool   `json:"readonly,omitempty"`
	Nodes    []Node `json:"nodes,omitempty"`
	Why      string `json:"why,omitempty"`
}

// Watch is a never-writable path the view cannot hold by itself: one that
// does not exist yet inside a writable root (the command could create it),
// or a symbolic link there (the command could replace the link; its target
// is protected). Changed reports the ones that changed.
type Watch struct {
	Path string `json:"path"`
	Link string `json:"link,omitempty"` // the link's target when planned; "" = did not exist
	Why  string `json:"why,omitempty"`
}

// Plan is a computed file system view.
type Plan struct {
	Mode Mode `json:"mode"`
	// Ops are the mount operations, in order.
	Ops []Op `json:"ops,omitempty"`
	// Writable are the roots Landlock lets the command write below
	// (directories) or write (files); writes anywhere else are refused.
	Writable []string `json:"writable,omitempty"`
	// NeverWritable are the paths bound read-only over themselves: the
	// exact list of what would otherwise be writable and must not be.
	NeverWritable []string `json:"never_writable,omitempty"`
	// Hidden are the paths that read as empty.
	Hidden []string `json:"hidden,omitempty"`
	// Watch are never-writable paths to check after the run (Changed).
	Watch []Watch `json:"watch,omitempty"`
	// Scanned is how many directories planning read to find git
	// repositories and other code files in the writable roots.
	Scanned int `json:"scanned,omitempty"`

	// after is what planning saw in the writable roots, for AfterRun
	// (sandgate's own: not marshalled, the init does not need it).
	after *afterRun
}

// Unrestricted reports whether the plan applies nothing (ModeHost).
func (p *Plan) Unrestricted() bool { return p.Mode == ModeHost }

// Marshal encodes the plan for the process that applies it (the sandbox
// init, the same binary), in a compact binary form (see encode.go).
func (p *Plan) Marshal() ([]byte, error) { return encodePlan(p) }

// UnmarshalPlan decodes a plan made by Marshal; it refuses a malformed
// one with an error.
func UnmarshalPlan(b []byte) (*Plan, error) { return decodePlan(b) }

// Changed returns the watched paths that changed since planning: a
// never-writable path that now exists, a symbolic link that now points
// elsewhere or is gone. Call it after the run (it reads fsys).
func (p *Plan) Changed(fsys FS) []string {
	var out []string
	for _, w := range p.Watch {
		fi, err := fsys.Lstat(w.Path)
		switch {
		case w.Link == "" && err == nil:
			out = append(out, w.Path)
		case w.Link != "" && (err != nil || fi.Mode()&fs.ModeSymlink == 0):
			out = append(out, w.Path)
		case w.Link != "":
			if t, err := fsys.Readlink(w.Path); err != nil || t != w.Link {
				out = append(out, w.Path)
			}
		}
	}
	return out
}

// role is what a layer is for.
type role int

const (
	rolePrivate role = iota // a private tmpfs: /tmp and the like, $TMPDIR, the fresh home
	roleHome                // the copy-on-write home
	roleHide                // a hidden path
	roleRoot                // a writable root
	roleKeep                // a path that stays visible
	roleUnhide              // an unhidden path
)

// layer is a mount operation at its own path, before sorting.
type layer struct {
	op      Op
	role    role
	dir     bool     // the mounted thing is a directory
	unhides []*layer // captured right before this layer (roleHide)
}

// keep reports whether l shows earlier content again (a bind) rather than
// new content.
func (l *layer) keep() bool { return l.role >= roleRoot }

// fresh reports whether l is an empty tmpfs, in which the mount points of
// later layers must be created.
func (l *layer) fresh() bool { return l.op.Kind == OpTmpfs }

// NewPlan computes the view of profile pr, reading the file system through
// fsys. Errors about the profile's paths are *PathError.
func NewPlan(pr Profile, fsys FS) (*Plan, error) {
	if pr.Mode == ModeHost {
		return &Plan{Mode: ModeHost}, nil
	}
	if pr.Mode != ModeWorkspace && pr.Mode != ModeReadonly {
		return nil, &PathError{Field: "mode", Path: pr.Mode.String(), Kind: InvalidProfile}
	}
	pl := &planner{fs: newPlanFS(fsys), pr: pr, nextID: 1}
	if err := pl.inputs(); err != nil {
		return nil, err
	}
	pl.scan()
	if err := pl.checkRoots(); err != nil {
		return nil, err
	}
	pl.build()
	return pl.plan, nil
}

// root is a writable root.
type root struct {
	path  string // resolved
	field string
	given string // as given
	dir   bool
}

// keepPath is a path that must stay visible at its own path.
type keepPath struct {
	path string // resolved
	orig string // as given, when it differs (a symbolic link to keep too)
	dir  bool
}

// hidePath is a path to hide.
type hidePath struct {
	path string // resolved
	dir  bool
}

type planner struct {
	fs     FS
	pr     Profile
	plan   *Plan
	nextID int

	home, configHome, tmpDir, freshHome string
	overlay                             bool
	roots                               []root
	keeps                               []keepPath
	hides                               []hidePath
	unhides                             []keepPath
	privateTmp                          []string // resolved, existing
	cands                               []candidate
	scanned                             int
	after                               *afterRun
}

// expand applies "~" and requires an absolute path.
func (pl *planner) expand(field, p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if pl.pr.Home == "" {
			return "", &PathError{Field: field, Path: p, Kind: NotAbsolute, Detail: "there is no home directory"}
		}
		return path.Join(pl.pr.Home, p[1:]), nil
	}
	if !path.IsAbs(p) {
		return "", &PathError{Field: field, Path: p, Kind: NotAbsolute}
	}
	return path.Clean(p), nil
}

// mustResolve expands and resolves p, which must exist.
func (pl *planner) mustResolve(field, p string) (string, fs.FileInfo, error) {
	e, err := pl.expand(field, p)
	if err != nil {
		return "", nil, err
	}
	r, err := resolve(pl.fs, e)
	if err != nil {
		return "", nil, &PathError{Field: field, Path: p, Kind: NotExist, Err: err}
	}
	fi, err := pl.fs.Lstat(r)
	if err != nil {
		return "", nil, &PathError{Field: field, Path: p, Kind: NotExist, Err: err}
	}
	return r, fi, nil
}

// mayResolve expands and resolves p; ok is false when it does not exist.
func (pl *planner) mayResolve(field, p string) (r string, fi fs.FileInfo, ok bool, err error) {
	e, err := pl.expand(field, p)
	if err != nil {
		return "", nil, false, err
	}
	r, rerr := resolve(pl.fs, e)
	if rerr != nil {
		return "", nil, false, nil
	}
	fi, rerr = pl.fs.Lstat(r)
	if rerr != nil {
		return "", nil, false, nil
	}
	return r, fi, true, nil
}

// inputs resolves every path of the profile.
func (pl *planner) inputs() error {
	pr := pl.pr
	if pr.Home != "" {
		h, _, err := pl.mustResolve("home", pr.Home)
		if err != nil {
			return err
		}
		pl.home = h
		pl.pr.Home = h
	}
	if pr.ConfigHome != "" {
		e, err := pl.expand("config_home", pr.ConfigHome)
		if err != nil {
			return err
		}
		pl.configHome = e
		if r, err := resolve(pl.fs, e); err == nil {
			pl.configHome = r
		}
	}
	if err := pl.privateDirs(); err != nil {
		return err
	}
	if err := pl.writableRoots(); err != nil {
		return err
	}
	if err := pl.hidden(); err != nil {
		return err
	}
	if err := pl.ownPaths(); err != nil {
		return err
	}
	return pl.visible()
}

// ownPaths refuses relative paths among sandgate's own files (they must
// be protected, so they must be known exactly).
func (pl *planner) ownPaths() error {
	pr := pl.pr
	check := func(field string, ps ...string) error {
		for _, p := range ps {
			if p == "" {
				continue
			}
			if _, err := pl.expand(field, p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := check("config", pr.ConfigPaths...); err != nil {
		return err
	}
	if err := check("executable", pr.Executable, pr.Invoked); err != nil {
		return err
	}
	if err := check("audit", pr.AuditFile); err != nil {
		return err
	}
	return check("protect", pr.Protect...)
}

// privateDirs resolves /tmp, /var/tmp, /dev/shm, $TMPDIR and the fresh home.
func (pl *planner) privateDirs() error {
	for _, t := range privateTmp {
		r, fi, ok, _ := pl.mayResolve("tmp", t)
		if !ok || !fi.IsDir() {
			if t == "/tmp" {
				return &PathError{Field: "tmp", Path: t, Kind: NotExist}
			}
			continue
		}
		if !slices.Contains(pl.privateTmp, r) {
			pl.privateTmp = append(pl.privateTmp, r)
		}
	}
	if t := pl.pr.TmpDir; t != "" {
		e, err := pl.expand("tmpdir", t)
		if err != nil {
			return err
		}
		r, err := resolve(pl.fs, e)
		if err != nil {
			// A $TMPDIR that does not exist can be made in a private
			// /tmp, nowhere else.
			if r, err = resolveExisting(pl.fs, e); err != nil || !pl.underPrivateTmp(r) {
				return &PathError{Field: "tmpdir", Path: t, Kind: NotExist}
			}
		}
		if r == "/" {
			return &PathError{Field: "tmpdir", Path: t, Kind: WholeFileSystem}
		}
		if !slices.Contains(pl.privateTmp, r) {
			pl.tmpDir = r
		}
	}
	if f := pl.pr.FreshHome; f != "" {
		r, fi, err := pl.mustResolve("fresh_home", f)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return &PathError{Field: "fresh_home", Path: f, Kind: NotDirectory}
		}
		pl.freshHome = r
	}
	// A home of "/" (some containers) is not made copy-on-write: that
	// would be the whole file system. It stays read-only.
	pl.overlay = pl.pr.Mode == ModeWorkspace && pl.home != "" && pl.home != "/" && pl.freshHome == ""
	return nil
}

func (pl *planner) underPrivateTmp(p string) bool {
	for _, t := range pl.privateTmp {
		if within(p, t) {
			return true
		}
	}
	return false
}

// writableRoots resolves the workspace and --write paths.
func (pl *planner) writableRoots() error {
	pr := pl.pr
	switch {
	case pr.Mode == ModeWorkspace && pr.Workspace == "":
		return &PathError{Field: "workspace", Kind: InvalidProfile, Detail: "--fs workspace needs a workspace directory"}
	case pr.Mode == ModeReadonly && pr.Workspace != "":
		return &PathError{Field: "workspace", Path: pr.Workspace, Kind: InvalidProfile, Detail: "--fs readonly has no workspace"}
	}
	add := func(field, p string, mustDir bool) error {
		r, fi, err := pl.mustResolve(field, p)
		if err != nil {
			return err
		}
		switch {
		case mustDir && !fi.IsDir():
			return &PathError{Field: field, Path: p, Kind: NotDirectory}
		case r == "/":
			return &PathError{Field: field, Path: p, Kind: WholeFileSystem}
		case pl.home != "" && within(pl.home, r):
			return &PathError{Field: field, Path: p, Kind: ContainsHome}
		}
		for _, o := range pl.roots {
			if o.path == r {
				return nil
			}
		}
		pl.roots = append(pl.roots, root{path: r, field: field, given: p, dir: fi.IsDir()})
		return nil
	}
	if pr.Workspace != "" {
		if err := add("workspace", pr.Workspace, true); err != nil {
			return err
		}
	}
	for _, w := range pr.Write {
		if err := add("write", w, false); err != nil {
			return err
		}
	}
	return nil
}

// hidden resolves the hidden paths (default ones and --hide) and the
// --unhide paths; an unhide at or above a hidden path cancels it.
func (pl *planner) hidden() error {
	var unhide []string
	for _, u := range pl.pr.Unhide {
		r, fi, ok, err := pl.mayResolve("unhide", u)
		if err != nil {
			return err
		}
		if ok {
			unhide = append(unhide, r)
			pl.unhides = append(pl.unhides, keepPath{path: r, dir: fi.IsDir()})
		}
	}
	var want []string
	for _, h := range DefaultHidden(pl.home, pl.configHome) {
		want = append(want, pl.glob(h)...)
	}
	for _, h := range pl.pr.Hide {
		e, err := pl.expand("hide", h)
		if err != nil {
			return err
		}
		want = append(want, pl.glob(e)...)
	}
	seen := map[string]bool{}
	for _, h := range want {
		r, fi, ok, _ := pl.mayResolve("hide", h)
		if !ok || seen[r] || r == "/" || pl.underPrivateTmp(r) {
			continue
		}
		seen[r] = true
		if slices.ContainsFunc(unhide, func(u string) bool { return within(r, u) }) {
			continue
		}
		pl.hides = append(pl.hides, hidePath{path: r, dir: fi.IsDir()})
	}
	sort.Slice(pl.hides, func(i, j int) bool { return pl.hides[i].path < pl.hides[j].path })
	// A path inside another hidden one is hidden with it, unless a
	// writable root between the two shows it again.
	var outer []hidePath
	for _, h := range pl.hides {
		inside := slices.ContainsFunc(outer, func(o hidePath) bool {
			between := slices.ContainsFunc(pl.roots, func(r root) bool { return within(r.path, o.path) && within(h.path, r.path) })
			return o.dir && within(h.path, o.path) && !between
		})
		if !inside {
			outer = append(outer, h)
		}
	}
	pl.hides = outer
	return nil
}

// glob expands a final "prefix*" component; other paths are returned as
// they are.
func (pl *planner) glob(p string) []string {
	dir, base := path.Split(p)
	prefix, ok := strings.CutSuffix(base, "*")
	if !ok {
		return []string{p}
	}
	ents, err := pl.fs.ReadDir(path.Clean(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	return out
}

// visible resolves the paths that stay visible: the command, sandgate's
// binary and Profile.Visible.
func (pl *planner) visible() error {
	pr := pl.pr
	fields := []string{"command", "executable", "invoked"}
	list := append([]string{pr.Command, pr.Executable, pr.Invoked}, pr.Visible...)
	for i, v := range list {
		if v == "" {
			continue
		}
		field := "visible"
		if i < len(fields) {
			field = fields[i]
		}
		r, fi, ok, err := pl.mayResolve(field, v)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		k := keepPath{path: r, dir: fi.IsDir()}
		if e, _ := pl.expand("visible", v); e != r {
			k.orig = e
		}
		pl.keeps = append(pl.keeps, k)
	}
	return nil
}

// shade is what covers directories in the view: a directory below one of
// covers (a hidden path or a private tmpfs) is shadowed rather than shown
// by the writable root that holds it, unless a root deeper than the cover
// holds it: the command can neither see nor write what is there.
type shade struct {
	covers, roots []string
}

// shade is the planner's shade.
func (pl *planner) shade() shade {
	var sh shade
	for _, c := range append([]string{pl.tmpDir, pl.freshHome}, pl.privateTmp...) {
		if c != "" {
			sh.covers = append(sh.covers, c)
		}
	}
	for _, h := range pl.hides {
		sh.covers = append(sh.covers, h.path)
	}
	for _, r := range pl.roots {
		sh.roots = append(sh.roots, r.path)
	}
	return sh
}

// shadowed reports whether the directory p is covered in the view.
func (sh shade) shadowed(p string) bool {
	cover, top := -1, -1
	for _, c := range sh.covers {
		if within(p, c) {
			cover = max(cover, depth(c))
		}
	}
	for _, r := range sh.roots {
		if within(p, r) {
			top = max(top, depth(r))
		}
	}
	return cover > top
}

// scan collects the never-writable candidates: sandgate's own files, the
// system files, shell startup files at the top of each writable root and
// in the home directory, and what the writable roots hold that runs code.
func (pl *planner) scan() {
	pr := pl.pr
	own := append(append([]string{}, pr.ConfigPaths...), pr.Executable, pr.Invoked, pr.AuditFile)
	own = append(own, pr.Protect...)
	for _, p := range own {
		// Relative ones were refused by inputs (ownPaths).
		if e, err := pl.expand("protect", p); err == nil && p != "" {
			pl.cands = append(pl.cands, candidate{path: e, why: "sandgate's own file"})
		}
	}
	for _, p := range SystemFiles {
		pl.cands = append(pl.cands, candidate{path: p, why: "read by sandgate during the run"})
	}
	tops := []string{}
	if pl.home != "" {
		tops = append(tops, pl.home)
	}
	sh := pl.shade()
	sc := &scanner{fs: pl.fs, home: pl.home, seen: map[string]bool{}, skip: sh.shadowed,
		record: map[string]*dirRecord{}, now: time.Now()}
	var walked []string
	for _, r := range pl.roots {
		if !r.dir {
			continue
		}
		tops = append(tops, r.path)
		walked = append(walked, r.path)
		sc.walk(r.path)
	}
	for i, t := range tops {
		for _, f := range ShellStartupFiles {
			pl.cands = append(pl.cands, candidate{path: path.Join(t, f), why: "shell or login startup file"})
		}
		if pl.home != "" && i == 0 {
			continue // the home is not walked: only its startup files
		}
		for _, f := range CodeFiles {
			// Found by the walk when they exist; watched when not.
			pl.cands = append(pl.cands, candidate{path: path.Join(t, f), why: "runs code when a tool next enters this directory"})
		}
	}
	pl.cands = append(pl.cands, sc.found...)
	pl.scanned = sc.dirs
	pl.after = newAfterRun(pl.fs, sc, walked, sh)
}

// checkRoots refuses a writable root at or below a never-writable path.
func (pl *planner) checkRoots() error {
	for _, r := range pl.roots {
		for _, c := range pl.cands {
			p := c.path
			if rp, err := resolve(pl.fs, c.path); err == nil {
				p = rp
			}
			if within(r.path, p) {
				return &PathError{Field: r.field, Path: r.given, Kind: InsideNeverWritable, Detail: p + ": " + c.why}
			}
		}
	}
	return nil
}

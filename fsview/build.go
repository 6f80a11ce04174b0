package fsview

import (
	"io/fs"
	"path"
	"slices"
	"sort"
)

// build turns the resolved inputs into the plan.
func (pl *planner) build() {
	plan := &Plan{Mode: pl.pr.Mode, Scanned: pl.scanned, after: pl.after}
	pl.plan = plan
	layers := pl.covers()
	layers = append(layers, pl.keepLayers(layers)...)
	sort.SliceStable(layers, func(i, j int) bool {
		a, b := layers[i], layers[j]
		if da, db := depth(a.op.Path), depth(b.op.Path); da != db {
			return da < db
		}
		if a.keep() != b.keep() {
			return !a.keep()
		}
		return a.op.Path < b.op.Path
	})
	pl.mountPoints(layers)

	// Captures of what the binds show, before anything covers it.
	var first []*layer
	for _, l := range layers {
		if l.role == roleRoot || l.role == roleKeep {
			first = append(first, l)
		}
	}
	sort.Slice(first, func(i, j int) bool { return first[i].op.Path < first[j].op.Path })
	for _, l := range first {
		l.op.From = pl.capture(l.op.Path, l.op.Why)
	}
	homeCapture := 0
	if pl.overlay {
		homeCapture = pl.capture(pl.home, "lower layer of the copy-on-write home")
	}
	plan.Ops = append(plan.Ops, Op{Kind: OpReadOnlyAll, Why: "nothing is writable but the writable roots"})
	needScratch := pl.overlay
	for _, h := range pl.hides {
		needScratch = needScratch || !h.dir
	}
	if needScratch {
		plan.Ops = append(plan.Ops, Op{Kind: OpScratch, Path: pl.privateTmp[0], Why: "staging for the home's upper layer and the empty file"})
	}
	for _, l := range layers {
		if l.role == roleHome {
			id := pl.newID()
			plan.Ops = append(plan.Ops, Op{Kind: OpOverlay, ID: id, From: homeCapture, Why: "copy-on-write home"})
			l.op.From = id
		}
	}
	for _, l := range layers {
		for _, u := range l.unhides {
			u.op.From = pl.capture(u.op.Path, "unhidden")
		}
		plan.Ops = append(plan.Ops, l.op)
	}
	pl.guards(layers)
	pl.writable()
	for _, h := range pl.hides {
		plan.Hidden = append(plan.Hidden, h.path)
	}
}

func (pl *planner) newID() int {
	id := pl.nextID
	pl.nextID++
	return id
}

// capture appends an OpCapture of p and returns its ID.
func (pl *planner) capture(p, why string) int {
	id := pl.newID()
	pl.plan.Ops = append(pl.plan.Ops, Op{Kind: OpCapture, Path: p, ID: id, Why: why})
	return id
}

// covers are the layers of new content: private temporary directories,
// the fresh home, the copy-on-write home and the hidden paths.
func (pl *planner) covers() []*layer {
	var out []*layer
	tmpfs := func(p string, mode uint32, owner *Owner, why string) {
		out = append(out, &layer{op: Op{Kind: OpTmpfs, Path: p, Mode: mode, Owner: owner, Why: why}, role: rolePrivate, dir: true})
	}
	for _, t := range pl.privateTmp {
		tmpfs(t, 0o1777, nil, "private "+t)
	}
	if pl.tmpDir != "" {
		tmpfs(pl.tmpDir, 0o700, pl.pr.Owner, "private $TMPDIR")
	}
	if pl.freshHome != "" {
		tmpfs(pl.freshHome, 0o700, pl.pr.Owner, "fresh home")
	}
	if pl.overlay {
		out = append(out, &layer{op: Op{Kind: OpBind, Path: pl.home, Why: "copy-on-write home"}, role: roleHome, dir: true})
	}
	for _, h := range pl.hides {
		if h.dir {
			out = append(out, &layer{op: Op{Kind: OpTmpfs, Path: h.path, Mode: 0o755, ReadOnly: true, Why: "hidden"}, role: roleHide, dir: true})
		} else {
			out = append(out, &layer{op: Op{Kind: OpEmptyFile, Path: h.path, Why: "hidden"}, role: roleHide})
		}
	}
	return out
}

// innermost returns the deepest layer whose path contains p (the last one
// of those at the same path), or nil.
func innermost(layers []*layer, p string) *layer {
	var best *layer
	for _, l := range layers {
		if within(p, l.op.Path) && (best == nil || depth(l.op.Path) >= depth(best.op.Path)) {
			best = l
		}
	}
	return best
}

// covering reports whether l hides what was at its path (a private tmpfs
// or a hidden path).
func covering(l *layer) bool {
	return l != nil && (l.role == rolePrivate || l.role == roleHide)
}

// keepLayers are the binds: every writable root (read-write), and the
// paths that must stay visible and unhidden paths (read-only) when a
// covering layer would hide them.
func (pl *planner) keepLayers(covers []*layer) []*layer {
	var out []*layer
	for _, r := range pl.roots {
		out = append(out, &layer{op: Op{Kind: OpBind, Path: r.path, Why: "writable " + r.field}, role: roleRoot, dir: r.dir})
	}
	withRoots := append(append([]*layer{}, covers...), out...)
	seen := map[string]bool{}
	for _, k := range pl.keeps {
		if l := innermost(withRoots, k.path); covering(l) && !seen[k.path] {
			seen[k.path] = true
			out = append(out, &layer{op: Op{Kind: OpBind, Path: k.path, ReadOnly: true, Why: "stays visible"}, role: roleKeep, dir: k.dir})
		}
	}
	for _, u := range pl.unhides {
		l := innermost(withRoots, u.path)
		if l == nil || l.role != roleHide || !l.fresh() || seen[u.path] {
			continue
		}
		seen[u.path] = true
		b := &layer{op: Op{Kind: OpBind, Path: u.path, ReadOnly: true, Why: "unhidden"}, role: roleUnhide, dir: u.dir}
		l.unhides = append(l.unhides, b)
		out = append(out, b)
	}
	return out
}

// mountPoints adds to every fresh tmpfs the mount points of the layers
// mounted on it, and the symbolic links by which kept paths were given.
func (pl *planner) mountPoints(layers []*layer) {
	for i, l := range layers {
		parent := innermost(layers[:i], l.op.Path)
		if parent == nil || !parent.fresh() || parent.op.Path == l.op.Path {
			continue
		}
		t := NodeFile
		if l.dir {
			t = NodeDir
		}
		parent.op.Nodes = append(parent.op.Nodes, Node{Path: l.op.Path, Type: t})
	}
	for _, k := range pl.keeps {
		if k.orig == "" {
			continue
		}
		link, err := resolveParent(pl.fs, k.orig)
		if err != nil || link == k.path {
			continue
		}
		if parent := innermost(layers, link); parent != nil && parent.fresh() && parent.op.Path != link {
			parent.op.Nodes = append(parent.op.Nodes, Node{Path: link, Type: NodeSymlink, Target: k.path})
		}
	}
}

// writable fills Plan.Writable: what Landlock lets the command write.
func (pl *planner) writable() {
	var w []string
	for _, r := range pl.roots {
		w = append(w, r.path)
	}
	w = append(w, pl.privateTmp...)
	for _, p := range []string{pl.tmpDir, pl.freshHome} {
		if p != "" {
			w = append(w, p)
		}
	}
	if pl.overlay {
		w = append(w, pl.home)
	}
	for _, d := range devices {
		if r, err := resolve(pl.fs, d); err == nil {
			w = append(w, r)
		}
	}
	slices.Sort(w)
	pl.plan.Writable = slices.Compact(w)
}

// guard is a path to bind read-only over itself.
type guard struct {
	path string
	dir  bool
	why  string
}

// guards adds the OpPin and OpProtect operations and the watch list: every
// never-writable candidate the command could otherwise write.
func (pl *planner) guards(layers []*layer) {
	var protect []guard
	watch := map[string]Watch{}
	// realRoot reports whether p's content comes from a writable root
	// (real writes), and home whether from the copy-on-write home.
	where := func(p string) (realRoot, home bool) {
		switch l := innermost(layers, p); {
		case l == nil:
			return false, false
		case l.role == roleRoot:
			return true, false
		case l.role == roleHome:
			return false, true
		}
		return false, false
	}
	for _, c := range pl.cands {
		p, err := resolveParent(pl.fs, c.path)
		if err != nil {
			continue
		}
		realRoot, home := where(p)
		if !realRoot && !home {
			continue
		}
		fi, err := pl.fs.Lstat(p)
		if err != nil {
			if realRoot {
				watch[p] = Watch{Path: p, Why: c.why}
			}
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if realRoot {
				link, _ := pl.fs.Readlink(p)
				watch[p] = Watch{Path: p, Link: link, Why: c.why}
			}
			t, err := resolve(pl.fs, p)
			if err != nil {
				continue
			}
			if r, h := where(t); !r && !h {
				continue
			}
			p = t
			if fi, err = pl.fs.Lstat(t); err != nil {
				continue
			}
		}
		protect = append(protect, guard{path: p, dir: fi.IsDir(), why: c.why})
	}
	protect = outermost(protect)
	pins := pl.pins(layers, protect)
	for _, g := range pins {
		pl.plan.Ops = append(pl.plan.Ops, Op{Kind: OpPin, Path: g, Why: "leads to a never-writable path"})
	}
	for _, g := range protect {
		pl.plan.Ops = append(pl.plan.Ops, Op{Kind: OpProtect, Path: g.path, Why: g.why})
		pl.plan.NeverWritable = append(pl.plan.NeverWritable, g.path)
	}
	for _, w := range watch {
		pl.plan.Watch = append(pl.plan.Watch, w)
	}
	sort.Slice(pl.plan.Watch, func(i, j int) bool { return pl.plan.Watch[i].Path < pl.plan.Watch[j].Path })
}

// outermost sorts gs parent first and drops duplicates and paths inside a
// protected directory.
func outermost(gs []guard) []guard {
	sort.SliceStable(gs, func(i, j int) bool {
		if di, dj := depth(gs[i].path), depth(gs[j].path); di != dj {
			return di < dj
		}
		return gs[i].path < gs[j].path
	})
	var out []guard
	for _, g := range gs {
		if !slices.ContainsFunc(out, func(o guard) bool { return o.path == g.path || (o.dir && within(g.path, o.path)) }) {
			out = append(out, g)
		}
	}
	return out
}

// pins are the directories between the outermost writable root holding a
// protected path and that path: bound over themselves, they cannot be
// renamed away and replaced by a directory with other contents. Paths that
// are mount points already (layers, protected paths) need no pin.
func (pl *planner) pins(layers []*layer, protect []guard) []string {
	mounted := map[string]bool{}
	for _, l := range layers {
		mounted[l.op.Path] = true
	}
	for _, g := range protect {
		mounted[g.path] = true
	}
	set := map[string]bool{}
	for _, g := range protect {
		var top string
		for _, r := range pl.roots {
			if within(g.path, r.path) && (top == "" || depth(r.path) < depth(top)) {
				top = r.path
			}
		}
		if top == "" {
			continue
		}
		for a := path.Dir(g.path); within(a, top) && a != top; a = path.Dir(a) {
			if !mounted[a] && !slices.ContainsFunc(protect, func(o guard) bool { return o.dir && within(a, o.path) }) {
				set[a] = true
			}
		}
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if di, dj := depth(out[i]), depth(out[j]); di != dj {
			return di < dj
		}
		return out[i] < out[j]
	})
	return out
}

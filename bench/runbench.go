//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// benchRun is `bench run` (issue 3); with startupOnly (`bench startup`)
// only its start-up table.
func benchRun(cfg *config, out io.Writer, s *score, startupOnly bool) {
	rb := &runBench{
		cfg:         cfg,
		out:         out,
		s:           s,
		startupOnly: startupOnly,
		t: &table{
			title:  fmt.Sprintf("run (issue 3): start-up, %d interleaved rounds (each round runs every command once, in rotating order)", cfg.startupRounds),
			header: []string{"command", "mean", "median", "min", "median vs unshare", "mean vs unshare", "goal", "result"},
		},
		nt: &table{
			title:  "run (issue 3): from inside `sandgate run` through its proxy vs direct",
			header: []string{"measurement", "direct", "in sandbox", "ratio", "per-round", "goal", "result"},
		},
	}
	cleanup, ok := rb.workDir()
	if !ok {
		return
	}
	defer cleanup()
	if !rb.prepare() {
		return
	}
	rb.startup()
	if !startupOnly {
		rb.inSandbox()
	}
}

// runBench is one `bench run`: its two tables, and the binaries and
// environment its commands run with.
type runBench struct {
	cfg         *config
	startupOnly bool // only the start-up table (its two goals)
	out         io.Writer
	s           *score
	t           *table // start-up
	nt          *table // bulk and fresh tunnels from inside the sandbox
	dir         string
	sg          string // the sandgate binary
	bench       string // a copy of this program, for the in-sandbox client
	truePath    string // the `true` on PATH
	env         []string

	unshare    string
	unshareErr error // why there is no unshare on PATH
	bwrap      string
	bwrapErr   error  // why there is no bwrap on PATH
	floor      string // bench/internal/floor, built; "" when it could not be
}

// failAll says why nothing of `bench run` could be measured, prints the
// start-up table with that note, and counts its goals (five, or the
// start-up table's two) as not measured.
func (rb *runBench) failAll(format string, a ...any) {
	rb.t.note(format, a...)
	rb.t.print(rb.out)
	if rb.startupOnly {
		rb.s.failed += 2
	} else {
		rb.s.failed += 5
	}
}

// workDir makes the directory for the built binaries (-workdir, or a new
// temporary one that cleanup removes unless -keep).
func (rb *runBench) workDir() (cleanup func(), ok bool) {
	cleanup = func() {}
	rb.dir = rb.cfg.workDir
	if rb.dir == "" {
		d, err := os.MkdirTemp("", "sandgate-bench-")
		if err != nil {
			rb.failAll("cannot create a temporary directory: %v", err)
			return nil, false
		}
		rb.dir = d
		if !rb.cfg.keep {
			cleanup = func() { os.RemoveAll(d) }
		}
	} else if err := os.MkdirAll(rb.dir, 0o755); err != nil {
		rb.failAll("cannot create %s: %v", rb.dir, err)
		return nil, false
	}
	// Inside the sandbox everything runs as the caller's own uid, so the
	// binaries must be readable and executable by it.
	_ = os.Chmod(rb.dir, 0o755)
	return cleanup, true
}

// prepare finds or builds the binaries, makes the environment and checks
// that `sandgate run` works at all.
func (rb *runBench) prepare() bool {
	rb.sg = rb.cfg.sandgate
	if rb.sg == "" {
		var err error
		if rb.sg, err = buildSandgate(rb.cfg.srcDir, rb.dir); err != nil {
			rb.failAll("%v", err)
			return false
		}
		rb.t.note("sandgate built with CGO_ENABLED=0 into %s", rb.sg)
	} else {
		rb.t.note("sandgate binary: %s", rb.sg)
	}
	var err error
	if rb.bench, err = copySelf(rb.dir); err != nil {
		rb.failAll("cannot copy the bench binary for the in-sandbox client: %v", err)
		return false
	}
	if rb.truePath, err = exec.LookPath("true"); err != nil {
		rb.failAll("no `true` on PATH: %v", err)
		return false
	}
	rb.unshare, rb.unshareErr = exec.LookPath("unshare")
	rb.bwrap, rb.bwrapErr = exec.LookPath("bwrap")
	if rb.floor, err = buildFloor(rb.cfg.srcDir, rb.dir); err != nil {
		rb.t.note("the Go floor rows are not measured: %v", err)
	}

	// Each child gets an empty config directory so that no user
	// configuration changes the policy or the proxy's limits.
	cfgHome := filepath.Join(rb.dir, "xdg-config")
	_ = os.MkdirAll(cfgHome, 0o755)
	rb.env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome)

	// Smoke test first, so that a broken `sandgate run` is reported once
	// and plainly instead of as many failed rounds.
	if code, stderr, _, err := runCmd(rb.env, 30*time.Second, rb.sg, "run", "--", rb.truePath); err != nil || code != 0 {
		rb.failAll("`sandgate run -- true` does not work yet: exit %d, %v: %s", code, err, stderr)
		return false
	}
	return true
}

// startupCmd is one command of the start-up table and its timings.
type startupCmd struct {
	name string
	argv []string // nil: not run
	durs []time.Duration
	errs int
	last string
}

// startup times each command of the start-up table in interleaved rounds
// and prints the table.
func (rb *runBench) startup() {
	specs := rb.startupCmds()
	for round := -1; round < rb.cfg.startupRounds; round++ { // round -1 warms up
		for i := range specs {
			sp := specs[(i+max(round, 0))%len(specs)]
			if sp.argv == nil {
				continue
			}
			startT := time.Now()
			code, stderr, _, err := runCmd(rb.env, 30*time.Second, sp.argv[0], sp.argv[1:]...)
			el := time.Since(startT)
			if err != nil || code != 0 {
				sp.errs++
				sp.last = fmt.Sprintf("exit %d %v %s", code, err, stderr)
				continue
			}
			if round >= 0 {
				sp.durs = append(sp.durs, el)
			}
		}
	}
	rb.startupRows(specs)
	rb.t.print(rb.out)
}

// startupCmds lists the commands timed: specs[1] is the baseline, and
// specs[2] the one with a goal.
func (rb *runBench) startupCmds() []*startupCmd {
	sg, truePath, unshare := rb.sg, rb.truePath, rb.unshare
	specs := []*startupCmd{
		{name: "true", argv: []string{truePath}},
		{name: "unshare -Urn true", argv: []string{unshare, "-Urn", truePath}},
		{name: "sandgate run -- true", argv: []string{sg, "run", "--", truePath}},
		// For attributing the cost (no goals): one Go start-up of the
		// CLI without a sandbox, and the sandbox without the proxy.
		{name: "(info) sandgate --help", argv: []string{sg, "--help"}},
		{name: "(info) sandgate run --network none -- true", argv: []string{sg, "run", "--network", "none", "--", truePath}},
		{name: "(info) sandgate run --network full -- true", argv: []string{sg, "run", "--network", "full", "--", truePath}},
		// The namespaces sandgate must make (user, net, pid, mount, ipc,
		// uts, and a fresh /proc), made by unshare: the floor for any
		// sandbox that isolates as much.
		{name: "(info) unshare -Urnpfimu --mount-proc true", argv: []string{unshare, "-Urnpfimu", "--mount-proc", truePath}},
	}
	if rb.unshareErr != nil {
		specs[1].argv = nil
		specs[len(specs)-1].argv = nil
		rb.t.note("unshare not found: %v", rb.unshareErr)
	}
	specs = append(specs, rb.viewCmds()...)
	return append(specs, rb.floorCmds()...)
}

// floorCmds are the rows of bench/internal/floor, the smallest Go program
// of sandgate's shape (the same six namespaces; no proxy, firewall or
// view): a Go launcher that executes true in them, and one that starts a
// second Go process as their init (a fresh /proc, then true, reaped), as
// sandgate's netns backend does. They show what the design costs before
// sandgate does any of its own work.
func (rb *runBench) floorCmds() []*startupCmd {
	specs := []*startupCmd{
		{name: "(info) Go floor: Go launcher, 6 namespaces, true"},
		{name: "(info) Go floor: Go launcher, Go init, /proc, true"},
	}
	if rb.floor != "" {
		specs[0].argv = []string{rb.floor, "exec", rb.truePath}
		specs[1].argv = []string{rb.floor, "init", rb.truePath}
	}
	return specs
}

// floorStart is the index in startupCmds of the first Go floor row.
const floorStart = viewStart + 4

// viewStart is the index in startupCmds of the file system view's rows:
// the default view against bubblewrap (the goal), and without the view.
const viewStart = 7

// viewCmds are the start-up rows of the file system view (issue 10):
// `sandgate run -- true` with the default view (its workspace an empty
// project directory), the same with --fs host, and bubblewrap making a
// comparable view (read-only /, private /tmp, /proc, /dev, every
// namespace).
func (rb *runBench) viewCmds() []*startupCmd {
	ws := filepath.Join(rb.dir, "project")
	_ = os.MkdirAll(ws, 0o755)
	specs := []*startupCmd{
		{name: "bwrap --unshare-all --ro-bind / / --tmpfs /tmp --proc /proc --dev /dev true",
			argv: []string{rb.bwrap, "--unshare-all", "--ro-bind", "/", "/", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", rb.truePath}},
		{name: "sandgate run --fs workspace -- true", argv: []string{rb.sg, "run", "--fs", "workspace", "--workspace", ws, "--", rb.truePath}},
		{name: "(info) sandgate run --fs host -- true", argv: []string{rb.sg, "run", "--fs", "host", "--", rb.truePath}},
		// Without the transparent path (routes, the nftables table, the
		// DNS stub, the hosts and resolv.conf views): what it costs.
		{name: "(info) sandgate run --no-transparent -- true", argv: []string{rb.sg, "run", "--no-transparent", "--", rb.truePath}},
	}
	if rb.bwrapErr != nil {
		specs[0].argv = nil
		rb.t.note("bwrap not found (scripts/install-test-deps.sh installs bubblewrap): %v", rb.bwrapErr)
	}
	return specs
}

// startupRows adds one row per command, judging `sandgate run -- true`
// against `unshare -Urn true`.
func (rb *runBench) startupRows(specs []*startupCmd) {
	us := stats(specs[1].durs)
	bw := stats(specs[viewStart].durs)
	for _, sp := range specs {
		st := stats(sp.durs)
		goal, res := "", ""
		switch sp {
		case specs[2]:
			goal = "≤ 2× unshare"
			ok := st.n > 0 && us.n > 0 && sp.errs == 0
			res = rb.s.judge(ok, float64(st.median) <= 2*float64(us.median))
		case specs[viewStart+1]:
			goal = "≤ 1× bwrap"
			ok := st.n > 0 && bw.n > 0 && sp.errs == 0
			res = rb.s.judge(ok, st.median <= bw.median)
		}
		if st.n == 0 {
			rb.t.add(sp.name, "-", "-", "-", "-", "-", goal, res)
		} else {
			rb.t.add(sp.name, fmtMs(st.mean), fmtMs(st.median), fmtMs(st.minim), fmtRatio(st.median, us.median), fmtRatio(st.mean, us.mean), goal, res)
		}
		if sp.errs > 0 {
			rb.t.note("%s failed %d times; last: %s", sp.name, sp.errs, sp.last)
		}
	}
	rb.t.note("each figure is the wall time of fork+exec+wait from Go (os/exec), measured the same way for every command; the goal is judged on the median")
	if v, h := stats(specs[viewStart+1].durs), stats(specs[viewStart+2].durs); v.n > 0 && h.n > 0 {
		rb.t.note("the file system view costs %s per run (median of --fs workspace minus --fs host); --fs workspace vs bwrap: %s (median)", fmtMs(v.median-h.median), fmtRatio(v.median, bw.median))
	}
	if d, n := stats(specs[2].durs), stats(specs[viewStart+3].durs); d.n > 0 && n.n > 0 {
		rb.t.note("the transparent path costs %s per run (median of sandgate run -- true minus --no-transparent)", fmtMs(d.median-n.median))
	}
	if bw.n > 0 {
		var rs []string
		for _, i := range []int{2, viewStart + 3, viewStart + 2, viewStart - 1, floorStart, floorStart + 1} { // default, no transparent path, no view, bare namespaces, the Go floor
			if st := stats(specs[i].durs); st.n > 0 {
				rs = append(rs, fmt.Sprintf("%s %s", specs[i].name, fmtRatio(st.median, bw.median)))
			}
		}
		rb.t.note("medians vs bwrap: %s", strings.Join(rs, "; "))
	}
}

// inSandbox measures bulk and fresh-tunnel rates from inside the sandbox
// against the same client run directly, and prints the table.
func (rb *runBench) inSandbox() {
	cfg, nt := rb.cfg, rb.nt
	tgt, err := startTarget()
	if err != nil {
		nt.note("cannot start the target: %v", err)
		nt.print(rb.out)
		rb.s.failed += 3
		return
	}
	defer tgt.close()
	allow := tgt.addr()
	nt.note("target %s in this process (host network namespace); `sandgate run --allow %s -- %s _client -proxy env ...` in the sandbox vs the same client run directly, each a separate process", allow, allow, filepath.Base(rb.bench))
	nt.note("bulk: %d pairs of %s, sender %s, sink %s; fresh: %d pairs of %d clients × %v; inside, the client dials $HTTP_PROXY (the sandbox's own 127.0.0.1) and sends CONNECT %s", cfg.rounds, formatBytes(int64(cfg.bulkBytes)), cfg.sender, sinkKind(cfg.sink), cfg.freshRounds, cfg.freshClients, cfg.freshDur, allow)
	nt.note("ratio: median over the interleaved pairs of in-sandbox / direct (per-round: lowest–highest pair); sandbox start-up is not inside the measured time")

	freshArgs := []string{"-test", "fresh", "-tunnels", strconv.Itoa(cfg.freshClients), "-time", cfg.freshDur.String()}
	b1, b4, fr := pairedRounds(cfg, func(p *pairs, inSandbox bool, tunnels int) {
		args := freshArgs
		if tunnels > 0 {
			args = rb.bulkArgs(tunnels)
		}
		p.add(cfg, rb.out, inSandbox, rb.client(allow, inSandbox, args...))
	})
	pairedRows(cfg, nt, rb.s, b1, b4, fr)
	acceptNote(nt, tgt)
	nt.print(rb.out)
}

// bulkArgs are the client's arguments for one bulk measurement over n
// tunnels.
func (rb *runBench) bulkArgs(n int) []string {
	cfg := rb.cfg
	return []string{"-test", "bulk", "-tunnels", strconv.Itoa(n), "-bytes", strconv.FormatInt(int64(cfg.bulkBytes), 10), "-time", cfg.bulkTimeout.String(), "-sender", cfg.sender, "-sink", cfg.sink}
}

// client runs this program's _client against allow, in the sandbox
// (through its proxy) or directly, and returns the result it printed.
func (rb *runBench) client(allow string, inSandbox bool, args ...string) result {
	argv := append([]string{rb.bench, "_client", "-target", allow}, args...)
	if inSandbox {
		argv = append([]string{rb.sg, "run", "--allow", allow, "--"}, append(argv, "-proxy", "env")...)
	}
	limit := rb.cfg.bulkTimeout + 60*time.Second
	code, stderr, stdout, err := runCmd(rb.env, limit, argv[0], argv[1:]...)
	var r result
	line := lastLine(stdout)
	if jerr := json.Unmarshal([]byte(line), &r); jerr != nil || line == "" {
		r = result{Errors: 1}
		r.FirstErr = fmt.Sprintf("client exit %d %v: %s %s", code, err, strings.TrimSpace(stdout), stderr)
		return r
	}
	if inSandbox {
		r.Via = "sandbox " + r.Via
	}
	if code != 0 && r.Errors == 0 {
		r.fail(fmt.Errorf("client exit %d: %s", code, stderr))
	}
	return r
}

// runCmd runs a command with a time limit and returns its exit code, the
// tail of its stderr, and its stdout.
func runCmd(env []string, limit time.Duration, name string, args ...string) (int, string, string, error) {
	ctx, cancel := runContext(limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout bytes.Buffer
	stderr := &limitedBuf{}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("killed after %v", limit)
	}
	se := strings.TrimSpace(stderr.String())
	if len(se) > 600 {
		se = "…" + se[len(se)-600:]
	}
	return code, se, stdout.String(), err
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// buildSandgate builds ./cmd/sandgate (CGO_ENABLED=0) into dir.
func buildSandgate(src, dir string) (string, error) {
	return goBuild(src, dir, "sandgate", "./cmd/sandgate", "sandgate")
}

// buildFloor builds bench/internal/floor into dir.
func buildFloor(src, dir string) (string, error) {
	return goBuild(src, dir, "floor", "./bench/internal/floor", "bench/internal/floor")
}

// goBuild builds the package pkg of the sandgate module at src (found from
// the working directory when empty) with CGO_ENABLED=0 into dir/bin; what
// names it in the error.
func goBuild(src, dir, bin, pkg, what string) (string, error) {
	if src == "" {
		var err error
		if src, err = moduleRoot(); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, bin)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if outp, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s in %s failed (%v):\n%s", what, src, err, strings.TrimSpace(string(outp)))
	}
	return out, nil
}

// moduleRoot finds the sandgate module root from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/sandgate/sandgate\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the sandgate module (go.mod) from the working directory; use -src or -sandgate")
		}
		dir = parent
	}
}

// copySelf copies this program's binary into dir, so that the sandbox runs a
// stable, world-readable copy (`go run` deletes its own at exit).
func copySelf(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	in, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dst := filepath.Join(dir, "sandgate-bench")
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}

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

// benchRun is `bench run` (issue 3).
func benchRun(cfg *config, out io.Writer, s *score) {
	t := &table{
		title:  fmt.Sprintf("run (issue 3): start-up, %d interleaved rounds (each round runs every command once, in rotating order)", cfg.startupRounds),
		header: []string{"command", "mean", "median", "min", "median vs unshare", "mean vs unshare", "goal", "result"},
	}
	nt := &table{
		title:  "run (issue 3): from inside `sandgate run` through its proxy vs direct",
		header: []string{"measurement", "direct", "in sandbox", "ratio", "per-round", "goal", "result"},
	}
	failAll := func(format string, a ...any) {
		t.note(format, a...)
		t.print(out)
		s.failed += 4
	}

	dir := cfg.workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "sandgate-bench-")
		if err != nil {
			failAll("cannot create a temporary directory: %v", err)
			return
		}
		dir = d
		if !cfg.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		failAll("cannot create %s: %v", dir, err)
		return
	}
	// Inside the sandbox everything runs as the caller's own uid, so the
	// binaries must be readable and executable by it.
	_ = os.Chmod(dir, 0o755)

	sg := cfg.sandgate
	if sg == "" {
		var err error
		if sg, err = buildSandgate(cfg.srcDir, dir); err != nil {
			failAll("%v", err)
			return
		}
		t.note("sandgate built with CGO_ENABLED=0 into %s", sg)
	} else {
		t.note("sandgate binary: %s", sg)
	}
	benchBin, err := copySelf(dir)
	if err != nil {
		failAll("cannot copy the bench binary for the in-sandbox client: %v", err)
		return
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		failAll("no `true` on PATH: %v", err)
		return
	}
	unshare, uerr := exec.LookPath("unshare")

	// Each child gets an empty config directory so that no user
	// configuration changes the policy or the proxy's limits.
	cfgHome := filepath.Join(dir, "xdg-config")
	_ = os.MkdirAll(cfgHome, 0o755)
	env := append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome)

	// Smoke test first, so that a broken `sandgate run` is reported once
	// and plainly instead of as many failed rounds.
	if code, stderr, _, err := runCmd(env, 30*time.Second, sg, "run", "--", truePath); err != nil || code != 0 {
		failAll("`sandgate run -- true` does not work yet: exit %d, %v: %s", code, err, stderr)
		return
	}

	// --- start-up -------------------------------------------------------
	type cmdSpec struct {
		name string
		argv []string
		durs []time.Duration
		errs int
		last string
	}
	specs := []*cmdSpec{
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
	if uerr != nil {
		specs[1].argv = nil
		specs[len(specs)-1].argv = nil
		t.note("unshare not found: %v", uerr)
	}
	for round := -1; round < cfg.startupRounds; round++ { // round -1 warms up
		for i := range specs {
			sp := specs[(i+max(round, 0))%len(specs)]
			if sp.argv == nil {
				continue
			}
			startT := time.Now()
			code, stderr, _, err := runCmd(env, 30*time.Second, sp.argv[0], sp.argv[1:]...)
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
	us := stats(specs[1].durs)
	for _, sp := range specs {
		st := stats(sp.durs)
		goal, res := "", ""
		if sp == specs[2] {
			goal = "≤ 2× unshare"
			ok := st.n > 0 && us.n > 0 && sp.errs == 0
			res = s.judge(ok, float64(st.median) <= 2*float64(us.median))
		}
		if st.n == 0 {
			t.add(sp.name, "-", "-", "-", "-", "-", goal, res)
		} else {
			t.add(sp.name, fmtMs(st.mean), fmtMs(st.median), fmtMs(st.minim), fmtRatio(st.median, us.median), fmtRatio(st.mean, us.mean), goal, res)
		}
		if sp.errs > 0 {
			t.note("%s failed %d times; last: %s", sp.name, sp.errs, sp.last)
		}
	}
	t.note("each figure is the wall time of fork+exec+wait from Go (os/exec), measured the same way for every command; the goal is judged on the median")
	t.print(out)

	// --- bulk and fresh-tunnel rate from inside the sandbox ---------------
	tgt, err := startTarget()
	if err != nil {
		nt.note("cannot start the target: %v", err)
		nt.print(out)
		s.failed += 3
		return
	}
	defer tgt.close()
	allow := tgt.addr()
	nt.note("target %s in this process (host network namespace); `sandgate run --allow %s -- %s _client -proxy env ...` in the sandbox vs the same client run directly, each a separate process", allow, allow, filepath.Base(benchBin))
	nt.note("bulk: %d pairs of %s, sender %s, sink %s; fresh: %d pairs of %d clients × %v; inside, the client dials $HTTP_PROXY (the sandbox's own 127.0.0.1) and sends CONNECT %s", cfg.rounds, formatBytes(int64(cfg.bulkBytes)), cfg.sender, sinkKind(cfg.sink), cfg.freshRounds, cfg.freshClients, cfg.freshDur, allow)
	nt.note("ratio: median over the interleaved pairs of in-sandbox / direct (per-round: lowest–highest pair); sandbox start-up is not inside the measured time")

	client := func(inSandbox bool, args ...string) result {
		argv := append([]string{benchBin, "_client", "-target", allow}, args...)
		if inSandbox {
			argv = append([]string{sg, "run", "--allow", allow, "--"}, append(argv, "-proxy", "env")...)
		}
		limit := cfg.bulkTimeout + 60*time.Second
		code, stderr, stdout, err := runCmd(env, limit, argv[0], argv[1:]...)
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
	bulkArgs := func(n int) []string {
		return []string{"-test", "bulk", "-tunnels", strconv.Itoa(n), "-bytes", strconv.FormatInt(int64(cfg.bulkBytes), 10), "-time", cfg.bulkTimeout.String(), "-sender", cfg.sender, "-sink", cfg.sink}
	}
	freshArgs := []string{"-test", "fresh", "-tunnels", strconv.Itoa(cfg.freshClients), "-time", cfg.freshDur.String()}
	var b1, b4, fr pairs
	add := func(p *pairs, inSandbox bool, r result) {
		verbose(cfg, out, r)
		if inSandbox {
			p.proxied = append(p.proxied, r)
		} else {
			p.direct = append(p.direct, r)
		}
	}
	for round := 0; round < cfg.rounds; round++ {
		for _, sb := range pairOrder(round) {
			add(&b1, sb, client(sb, bulkArgs(1)...))
		}
		for _, sb := range pairOrder(round) {
			add(&b4, sb, client(sb, bulkArgs(4)...))
		}
	}
	for round := 0; round < cfg.freshRounds; round++ {
		for _, sb := range pairOrder(round) {
			add(&fr, sb, client(sb, freshArgs...))
			time.Sleep(100 * time.Millisecond)
		}
	}
	ratioRow(nt, s, "bulk, 1 tunnel", b1, false, 0.6)
	ratioRow(nt, s, "bulk, 4 tunnels", b4, false, 0.6)
	ratioRow(nt, s, fmt.Sprintf("fresh tunnels, %d clients", cfg.freshClients), fr, true, 0.7)
	if n, e := tgt.acceptErrors(); n > 0 {
		nt.note("LIMIT? the target's accept failed %d times, last: %s", n, e)
	}
	nt.print(out)
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
	if src == "" {
		var err error
		if src, err = moduleRoot(); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "sandgate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sandgate")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if outp, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building sandgate in %s failed (%v):\n%s", src, err, strings.TrimSpace(string(outp)))
	}
	return bin, nil
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

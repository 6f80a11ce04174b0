//go:build linux

package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// `bench inspect` (issue 12): HTTPS through sandgate's TLS inspection
// against direct TLS, a plain CONNECT tunnel through sandgate's proxy, and
// mitmproxy (mitmdump), interleaved round by round in one run.
//
// Layout: the upstream HTTPS server (its own CA) and the clients are in
// this process; sandgate's tunnel and inspection are the `_inspect-proxy`
// child; mitmdump is its own process. Every path goes to 127.0.0.1.

// inspectOpts are the flags of `bench inspect`.
type inspectOpts struct {
	rounds    int
	bytes     byteSize
	freshTime time.Duration
	clients   int
	mitmdump  string
	srt       string
	node      string
	profile   string
}

var inspectFlags = inspectOpts{bytes: 256 << 20}

// addInspectFlags registers the flags of `bench inspect` on fs.
func addInspectFlags(fs *flag.FlagSet) {
	fs.IntVar(&inspectFlags.rounds, "inspect-rounds", 4, "`inspect`: interleaved rounds (each measures every path once)")
	fs.Var(&inspectFlags.bytes, "inspect-bytes", "`inspect`: size of the one GET of the bulk download (e.g. 256MiB, 1GiB)")
	fs.DurationVar(&inspectFlags.freshTime, "inspect-fresh-time", time.Second, "`inspect`: duration of one new-connection-rate measurement")
	fs.IntVar(&inspectFlags.clients, "inspect-clients", 16, "`inspect`: parallel clients of the parallel new-connection rate")
	fs.StringVar(&inspectFlags.mitmdump, "mitmdump", "mitmdump", "`inspect`: the mitmdump to compare with (\"\" leaves mitmproxy out)")
	fs.StringVar(&inspectFlags.srt, "srt", defaultSrtDir(), "`inspect`: directory of the npm package @anthropic-ai/sandbox-runtime to compare with (its proxy-only mode; scripts/install-bench-deps.sh installs it there); \"\" leaves srt out")
	fs.StringVar(&inspectFlags.node, "node", "node", "`inspect`: the node that runs -srt")
	fs.StringVar(&inspectFlags.profile, "inspect-cpuprofile", "", "`inspect`: write a Go CPU profile of sandgate's proxy helper (tunnel and inspection) to FILE")
}

// inspectTest is one measurement of `bench inspect`.
type inspectTest struct {
	name    string
	perOp   bool
	measure func(p tlsPath) result
}

// inspectWorld is everything `bench inspect` starts.
type inspectWorld struct {
	dir  string
	up   *tlsUpstream
	sg   *sandgateProxies
	mitm *mitmdump
	srt  *srtProxy
}

func (w *inspectWorld) stop() {
	if w.srt != nil {
		w.srt.stop()
	}
	if w.mitm != nil {
		w.mitm.stop()
	}
	if w.sg != nil {
		w.sg.stop()
	}
	if w.up != nil {
		w.up.close()
	}
	os.RemoveAll(w.dir)
}

// benchInspect is `bench inspect`.
func benchInspect(cfg *config, out io.Writer, s *score) {
	o := inspectFlags
	t := &table{title: "inspect (issue 12): HTTPS through sandgate's TLS inspection vs direct, a plain CONNECT tunnel and the peers that terminate TLS", header: []string{"measurement"}}
	defer t.print(out)
	if o.rounds < 1 || o.clients < 1 || o.bytes < 1<<20 {
		t.note("-inspect-rounds and -inspect-clients must be at least 1, -inspect-bytes at least 1MiB")
		s.failed += 5
		return
	}
	w, paths, err := startInspectWorld(o)
	if w != nil {
		defer w.stop()
	}
	if err != nil {
		t.note("cannot start: %v", err)
		s.failed += 5
		return
	}
	var names, peers []string
	for _, p := range paths {
		names = append(names, p.name)
		if p.name != "direct" && p.name != "tunnel" && p.name != "inspect" {
			peers = append(peers, p.name)
		}
	}
	t.header = append([]string{"measurement"}, names...)
	for _, base := range append([]string{"direct", "tunnel"}, peers...) {
		t.header = append(t.header, "insp/"+base)
	}
	t.header = append(t.header, "per-round (vs peers)", "goal", "result")
	upstream := w.up.addr()
	resumed := map[string]int64{} // resumed handshakes of the resuming test, per path
	timeout := max(cfg.bulkTimeout, 2*time.Minute)
	tests := []inspectTest{
		{"bulk GET " + formatBytes(int64(o.bytes)) + ", HTTP/1.1", false, func(p tlsPath) result { return bulkGET(p, upstream, false, int64(o.bytes), timeout) }},
		{"bulk GET " + formatBytes(int64(o.bytes)) + ", h2", false, func(p tlsPath) result { return bulkGET(p, upstream, true, int64(o.bytes), timeout) }},
		{"new connections, 1 client", true, func(p tlsPath) result { r, _ := freshTLS(p, upstream, 1, o.freshTime, nil); return r }},
		{fmt.Sprintf("new connections, %d clients", o.clients), true, func(p tlsPath) result {
			r, _ := freshTLS(p, upstream, o.clients, o.freshTime, nil)
			return r
		}},
		{fmt.Sprintf("new connections, %d clients, resuming", o.clients), true, func(p tlsPath) result {
			r, n := freshTLS(p, upstream, o.clients, o.freshTime, tls.NewLRUClientSessionCache(64))
			resumed[p.name] += n
			return r
		}},
	}
	for _, p := range paths { // warm-up: leaf certificates, first connections
		for _, r := range []result{bulkGET(p, upstream, false, 16<<20, timeout), bulkGET(p, upstream, true, 16<<20, timeout), first(freshTLS(p, upstream, 1, 50*time.Millisecond, nil))} {
			if !r.ok() {
				t.note("warm-up through %s failed: %s", p.name, r.FirstErr)
			}
		}
	}
	res := make([]map[string][]result, len(tests))
	for i := range res {
		res[i] = map[string][]result{}
	}
	for round := range o.rounds {
		for i, tc := range tests {
			for k := range paths {
				p := paths[(k+round)%len(paths)]
				cpu0 := cpuOf(p.pid)
				r := tc.measure(p)
				if p.pid != 0 {
					r.ProxyCPU = cpuOf(p.pid) - cpu0
				}
				verbose(cfg, out, r)
				res[i][p.name] = append(res[i][p.name], r)
				if tc.perOp {
					time.Sleep(100 * time.Millisecond) // let closing sockets settle
				}
			}
		}
	}
	for i, tc := range tests {
		inspectRow(t, s, tc, res[i], names, peers)
	}
	inspectNotes(t, w, tests, res, o)
	var shares []string
	for _, p := range paths {
		var ops int64
		for _, r := range res[len(tests)-1][p.name] {
			ops += r.Ops
		}
		if ops > 0 {
			shares = append(shares, fmt.Sprintf("%s %.0f%%", p.name, 100*float64(resumed[p.name])/float64(ops)))
		}
	}
	t.note("resuming: each measurement's clients share one session cache (the first handshake is full); handshakes that resumed: %s", strings.Join(shares, ", "))
}

// first returns its first argument.
func first[T, U any](t T, _ U) T { return t }

// startInspectWorld starts the upstream, sandgate's helper and mitmdump,
// and returns the paths to measure (mitmproxy's only when it started).
func startInspectWorld(o inspectOpts) (*inspectWorld, []tlsPath, error) {
	dir, err := os.MkdirTemp("", "sandgate-bench-inspect-")
	if err != nil {
		return nil, nil, err
	}
	w := &inspectWorld{dir: dir}
	if w.up, err = startTLSUpstream(); err != nil {
		return w, nil, err
	}
	caFile := filepath.Join(dir, "upstream-ca.pem")
	if err := os.WriteFile(caFile, w.up.caPEM, 0o644); err != nil {
		return w, nil, err
	}
	if w.sg, err = startSandgateProxies(dir, w.up.addr(), caFile, o.profile); err != nil {
		return w, nil, err
	}
	paths := []tlsPath{
		{name: "direct", roots: w.up.pool},
		{name: "tunnel", proxy: w.sg.tunnel, roots: w.up.pool, pid: w.sg.pid()},
		{name: "inspect", proxy: w.sg.inspect, roots: w.sg.runCA, pid: w.sg.pid()},
	}
	if o.mitmdump != "" {
		if w.mitm, err = startMitmdump(o.mitmdump, dir, caFile); err != nil {
			return w, nil, err
		}
		paths = append(paths, tlsPath{name: "mitmproxy", proxy: w.mitm.addr, roots: w.mitm.ca, pid: w.mitm.pid()})
	}
	if _, err := os.Stat(o.srt); err != nil && o.srt == defaultSrtDir() {
		o.srt = "" // not installed where the script puts it: left out, with a note
	}
	if o.srt != "" {
		if w.srt, err = startSrt(o.node, o.srt, dir, caFile); err != nil {
			return w, nil, err
		}
		paths = append(paths, tlsPath{name: "srt", proxy: w.srt.addr, roots: w.srt.ca, pid: w.srt.pid(), noH2: true})
	}
	return w, paths, nil
}

// inspectRow adds one measurement's row: the totals of each path, the
// medians over the rounds of inspect / direct, tunnel and each peer, and
// the goal (inspection at least as fast as every peer).
func inspectRow(t *table, s *score, tc inspectTest, rs map[string][]result, names, peers []string) {
	format := fmtMBps
	if tc.perOp {
		format = fmtRate
	}
	cols := []string{tc.name}
	ok := true
	for _, name := range names {
		v, pathOK, firstErr, limit := agg(rs[name], tc.perOp)
		cols = append(cols, format(v))
		if !pathOK || v <= 0 {
			ok = false
		}
		if firstErr != "" {
			t.note("%s through %s failed: %s", tc.name, name, firstErr)
		}
		if limit != "" {
			t.note("LIMIT HIT in %s through %s: %s", tc.name, name, limit)
		}
	}
	worst := math.Inf(1)
	var spreads []string
	for _, base := range append([]string{"direct", "tunnel"}, peers...) {
		rr := pairs{direct: rs[base], proxied: rs["inspect"]}.roundRatios(tc.perOp)
		if len(rr) == 0 {
			cols = append(cols, "-")
			ok = false
			continue
		}
		m := median(rr)
		cols = append(cols, fmt.Sprintf("%.2f×", m))
		if base != "direct" && base != "tunnel" {
			worst = min(worst, m)
			spreads = append(spreads, fmt.Sprintf("%.2f–%.2f", rr[0], rr[len(rr)-1]))
		}
	}
	cols = append(cols, strings.Join(spreads, ", "))
	if len(peers) == 0 {
		t.add(append(cols, "", "")...)
		return
	}
	t.add(append(cols, "≥ 1.0× each peer", s.judge(ok, worst >= 1))...)
}

// inspectNotes explains the layout and gives the proxies' CPU.
func inspectNotes(t *table, w *inspectWorld, tests []inspectTest, res []map[string][]result, o inspectOpts) {
	t.note("upstream https://%s (HTTP/1.1 and h2, ECDSA P-256 certificate from the bench's own CA) and the clients in this process; sandgate's tunnel (proxy.Server, policy --allow TARGET) and inspection (proxy.Server with Options.Authority, policy --allow TARGET --inspect TARGET: every request allowed, decided and audited by method and path) in the _inspect-proxy child (pid %d)", w.up.addr(), w.sg.pid())
	if w.mitm != nil {
		t.note("mitmproxy: %s (pid %d): mitmdump %s", w.mitm.version, w.mitm.pid(), strings.Join(mitmdumpArgs("DIR", "CA", 0)[:4], " ")+" … "+strings.Join(mitmdumpArgs("DIR", "CA", 0)[8:], " "))
	}
	if w.srt != nil {
		t.note("srt: %s (pid %d), node %s, its proxy-only mode with TLS termination (an RSA 2048 CA from the bench on --ca-fd; the bench is its decider on --decider-fd and allows every request; the upstream CA through NODE_EXTRA_CA_CERTS); it speaks HTTP/1.1 only, so its h2 row is the h2-offering client answered over HTTP/1.1", w.srt.version, w.srt.pid(), nodeVersion(inspectFlags.node))
	} else {
		t.note("srt left out: no package at -srt (scripts/install-bench-deps.sh installs it in %s)", defaultSrtDir())
	}
	if w.mitm == nil && w.srt == nil {
		t.note("no peer (-mitmdump \"\" and no -srt): no goal judged")
	}
	t.note("ratios: median over the %d interleaved rounds (each path once per round, the order rotating); the path columns are totals over all rounds; per-round: lowest–highest inspect/peer", o.rounds)
	t.note("warm-up: a 16 MiB GET over HTTP/1.1 and h2 and 50 ms of new connections through each path before the first round")
	t.note("bulk: one GET per measurement, timed from the request to the last byte, read 256 KiB at a time; new connections: TCP (+CONNECT), a TLS 1.3 handshake offering http/1.1 (full, with no session to resume, except in the resuming row), GET of %d B with Connection: close, read to EOF; %s per measurement", smallBody, o.freshTime)
	for i, tc := range tests {
		var parts []string
		for _, name := range []string{"tunnel", "inspect", "mitmproxy", "srt"} {
			var cpu, units float64
			for _, r := range res[i][name] {
				cpu += r.ProxyCPU
				if tc.perOp {
					units += float64(r.Ops)
				} else {
					units += float64(r.Bytes) / 1e9
				}
			}
			if units <= 0 {
				continue
			}
			if tc.perOp {
				parts = append(parts, fmt.Sprintf("%s %.0f µs/conn", name, cpu/units*1e6))
			} else {
				parts = append(parts, fmt.Sprintf("%s %.2f s/GB", name, cpu/units))
			}
		}
		t.note("CPU of the proxy process, %s: %s", tc.name, strings.Join(parts, ", "))
	}
}

func fmtMBps(v float64) string { return fmt.Sprintf("%.0f MB/s", v/1e6) }

// defaultSrtDir is where scripts/install-bench-deps.sh puts srt:
// $SANDGATE_BENCH_PEERS (default ~/.cache/sandgate-bench)/srt.
func defaultSrtDir() string {
	base := os.Getenv("SANDGATE_BENCH_PEERS")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".cache", "sandgate-bench")
	}
	return filepath.Join(base, "srt", "node_modules", "@anthropic-ai", "sandbox-runtime")
}

// nodeVersion is `node --version`, or "unknown".
func nodeVersion(node string) string {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

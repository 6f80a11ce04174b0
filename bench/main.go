//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// config holds the flags of the benchmark driver.
type config struct {
	rounds        int
	bulkBytes     byteSize
	bulkTimeout   time.Duration
	freshDur      time.Duration
	freshRounds   int
	freshClients  int
	idleTunnels   int
	idleConc      int
	idleTimeout   time.Duration
	startupRounds int
	sender        string
	sink          string
	sandgate      string
	srcDir        string
	workDir       string
	cpuProfile    string
	proxyChild    bool
	proxyImpl     string
	idleStacks    string
	keep          bool
	verbose       bool

	soakTunnels int
	soakWaves   int
	soakConc    int
	soakRuns    int
	soakLimits  intList
	soakTimeout time.Duration
}

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "_") {
		os.Exit(hiddenMain(os.Args[1], os.Args[2:]))
	}
	os.Exit(driverMain(os.Args[1:]))
}

// hiddenMain runs one of the helper modes the driver starts as child
// processes. They are not meant to be run by hand.
func hiddenMain(mode string, args []string) int {
	raiseNoFile(io.Discard)
	switch mode {
	case "_proxy":
		return proxyChildMain(args)
	case "_client":
		return clientChildMain(args)
	case "_chain":
		return chainMain(args)
	case "_nofile":
		return noFileMain(args)
	case "_inspect-proxy":
		return inspectProxyMain(args)
	}
	fmt.Fprintf(os.Stderr, "bench: unknown helper mode %q\n", mode)
	return 2
}

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg.bulkBytes = 1 << 30
	fs.IntVar(&cfg.rounds, "rounds", 8, "interleaved direct/proxied pairs of each bulk measurement")
	fs.Var(&cfg.bulkBytes, "bulk-bytes", "bytes moved per bulk measurement, split across its tunnels (e.g. 2GiB, 512MiB)")
	fs.DurationVar(&cfg.bulkTimeout, "bulk-timeout", 30*time.Second, "time limit of one bulk measurement")
	fs.StringVar(&cfg.sender, "sender", "write", "how bulk senders write: sendfile (from a memfd, zero-copy) or write (a 1 MiB buffer)")
	fs.StringVar(&cfg.sink, "sink", "256k", "how the bulk sink reads: 256k (256 KiB reads) or discard (io.Copy to io.Discard, 8 KiB reads: a slower baseline)")
	fs.DurationVar(&cfg.freshDur, "fresh-time", 300*time.Millisecond, "duration of one fresh-tunnel-rate measurement")
	fs.IntVar(&cfg.freshRounds, "fresh-rounds", 12, "interleaved direct/proxied pairs of the fresh-tunnel-rate measurement")
	fs.IntVar(&cfg.freshClients, "fresh-clients", 16, "concurrent clients in the fresh-tunnel-rate measurement")
	fs.IntVar(&cfg.idleTunnels, "idle-tunnels", 5000, "idle tunnels opened through the proxy for the RSS measurement")
	fs.IntVar(&cfg.idleConc, "idle-concurrency", 32, "concurrent openers in the idle-tunnel measurement")
	fs.DurationVar(&cfg.idleTimeout, "idle-timeout", 90*time.Second, "time limit for opening the idle tunnels")
	fs.IntVar(&cfg.startupRounds, "startup-rounds", 20, "interleaved rounds of true / unshare -Urn true / sandgate run -- true")
	fs.StringVar(&cfg.sandgate, "sandgate", "", "sandgate binary for `run` (default: build ./cmd/sandgate into a temporary directory)")
	fs.StringVar(&cfg.srcDir, "src", "", "module root to build sandgate from (default: found from the working directory)")
	fs.StringVar(&cfg.workDir, "workdir", "", "directory for the built binaries (default: a new temporary directory)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a Go CPU profile of this process (in `proxy` mode it includes the in-process proxy) to FILE")
	fs.BoolVar(&cfg.proxyChild, "proxy-child", false, "`proxy`: run the proxy for the bulk and fresh measurements in a child process instead of in-process (to strace or profile it alone)")
	fs.StringVar(&cfg.proxyImpl, "proxy-impl", "sandgate", "`proxy`: sandgate, or relay (a bare io.Copy CONNECT relay in this program: the best one proxy hop can do here, for reference)")
	fs.StringVar(&cfg.idleStacks, "idle-stacks", "", "after the idle-tunnel measurement, write the proxy child's goroutine stacks (SIGQUIT) to FILE")
	cfg.soakLimits = intList{20000, 4096}
	fs.IntVar(&cfg.soakTunnels, "soak-tunnels", 10000, "`soak`: tunnels opened in each wave")
	fs.IntVar(&cfg.soakWaves, "soak-waves", 3, "`soak`: waves under each descriptor limit")
	fs.IntVar(&cfg.soakConc, "soak-concurrency", 64, "`soak`: tunnels opened (and pinged) at once")
	fs.Var(&cfg.soakLimits, "soak-limits", "`soak`: the descriptor limits (soft = hard) of the proxies, comma-separated; the first one's proxy also serves the runs")
	fs.IntVar(&cfg.soakRuns, "soak-runs", 1000, "`soak`: sequential `sandgate run`s after the waves")
	fs.DurationVar(&cfg.soakTimeout, "soak-timeout", 10*time.Minute, "`soak`: time limit of the whole soak")
	addInspectFlags(fs)
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory")
	fs.BoolVar(&cfg.verbose, "v", false, "print each measurement as it completes")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench [flags] [proxy|run|startup|transparent|all|soak|inspect]\n\n")
		fmt.Fprintf(fs.Output(), "  proxy  direct vs sandgate's HTTP CONNECT proxy on loopback (issue 2)\n")
		fmt.Fprintf(fs.Output(), "  run    sandgate run start-up and in-sandbox bulk / tunnel rate (issue 3)\n")
		fmt.Fprintf(fs.Output(), "  startup  only the start-up table of run (issues 3 and 10)\n")
		fmt.Fprintf(fs.Output(), "  transparent  the transparent path vs CONNECT and direct (issue 11; root)\n")
		fmt.Fprintf(fs.Output(), "  all    proxy, run and transparent (default; transparent only as root)\n")
		fmt.Fprintf(fs.Output(), "  soak   waves of tunnels under descriptor limits, then many sandgate runs (issue 9)\n")
		fmt.Fprintf(fs.Output(), "  inspect  HTTPS through TLS inspection vs direct, a tunnel, mitmproxy and srt (issue 12; not part of all)\n\nflags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// driverMain parses the command line (the mode may come before or after
// the flags) and runs the chosen benchmarks.
func driverMain(args []string) int {
	var cfg config
	fs := newFlagSet(&cfg)
	mode := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		mode, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if mode == "" && len(rest) > 0 {
		mode, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", rest)
		return 2
	}
	if mode == "" {
		mode = "all"
	}
	if cfg.sender != "sendfile" && cfg.sender != "write" {
		fmt.Fprintln(os.Stderr, "bench: -sender must be sendfile or write")
		return 2
	}
	if cfg.sink != "256k" && cfg.sink != "discard" {
		fmt.Fprintln(os.Stderr, "bench: -sink must be 256k or discard")
		return 2
	}
	if cfg.proxyImpl != "sandgate" && cfg.proxyImpl != "relay" {
		fmt.Fprintln(os.Stderr, "bench: -proxy-impl must be sandgate or relay")
		return 2
	}
	if mode != "proxy" && mode != "run" && mode != "startup" && mode != "transparent" && mode != "all" && mode != "soak" && mode != "inspect" {
		fmt.Fprintf(os.Stderr, "bench: unknown mode %q: want proxy, run, startup, transparent, all, soak or inspect\n", mode)
		return 2
	}
	if cfg.soakTunnels < 1 || cfg.soakWaves < 1 || cfg.soakConc < 1 || cfg.soakRuns < 0 || len(cfg.soakLimits) == 0 {
		fmt.Fprintln(os.Stderr, "bench: -soak-tunnels, -soak-waves and -soak-concurrency must be at least 1, -soak-runs at least 0, -soak-limits not empty")
		return 2
	}
	if cfg.rounds < 1 || cfg.freshRounds < 1 || cfg.freshClients < 1 || cfg.idleTunnels < 0 || cfg.idleConc < 1 || cfg.startupRounds < 1 || cfg.bulkBytes < 1<<20 {
		fmt.Fprintln(os.Stderr, "bench: -rounds, -fresh-rounds, -fresh-clients, -idle-concurrency and -startup-rounds must be at least 1, -bulk-bytes at least 1MiB")
		return 2
	}

	out := os.Stdout
	fmt.Fprintf(out, "sandgate benchmark: %s, %d CPUs, %s, %s\n", time.Now().Format(time.RFC3339), runtime.NumCPU(), runtime.Version(), kernelRelease())
	fmt.Fprintf(out, "load average at the start: %s (other work on this machine adds noise; direct and proxied runs alternate so it affects both)\n", loadAvg())
	raiseNoFile(out)

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -cpuprofile: %v\n", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	var s score
	start := time.Now()
	if mode == "proxy" || mode == "all" {
		benchProxy(&cfg, out, &s)
	}
	if mode == "run" || mode == "startup" || mode == "all" {
		benchRun(&cfg, out, &s, mode == "startup")
	}
	if mode == "transparent" || mode == "all" {
		benchTransparent(&cfg, out, &s, mode == "transparent")
	}
	if mode == "soak" {
		benchSoak(&cfg, out, &s)
	}
	if mode == "inspect" {
		benchInspect(&cfg, out, &s)
	}
	fmt.Fprintf(out, "\nload average at the end: %s\n", loadAvg())
	fmt.Fprintf(out, "goals: %d PASS, %d MISS, %d not measured (%s)\n", s.pass, s.miss, s.failed, time.Since(start).Round(time.Second))
	if s.miss > 0 || s.failed > 0 {
		return 1
	}
	return 0
}

// intList is a flag value: comma-separated positive integers.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	var out intList
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("invalid number %q", f)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// byteSize is a flag value accepting plain byte counts or KiB/MiB/GiB suffixes.
type byteSize int64

func (b *byteSize) String() string { return formatBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return fmt.Errorf("invalid size %q", s)
	}
	*b = byteSize(n * mult)
	return nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

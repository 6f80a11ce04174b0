// Command bench measures sandgate against direct loopback connections and
// prints absolute figures, ratios and PASS/MISS against the performance goals
// of issues 2 and 3, and soaks the proxy under load (issue 9). Direct and
// proxied measurements are interleaved in one run so that machine noise
// affects both sides alike.
//
// Usage:
//
//	go run ./bench [flags] [proxy|run|all|soak]
//
//	proxy  bulk throughput (1 and 4 tunnels), fresh tunnels per second and
//	       RSS per idle tunnel, direct vs through sandgate's HTTP CONNECT proxy
//	run    `sandgate run -- true` start-up vs `unshare -Urn true` and bare
//	       `true`, and bulk / fresh-tunnel rate from inside the sandbox
//	all    both (the default)
//	soak   waves of 10,000 tunnels through `sandgate proxy` under descriptor
//	       limits of 20,000 and 4,096, then 1,000 sequential `sandgate run`s
//	       while the first proxy serves; fails on growth (issue 9)
//
// Run `go run ./bench -h` for the flags. Only loopback addresses are used.
// The exit status is 0 when every goal was met, 1 when a goal was missed or a
// measurement failed, and 2 for a usage error. docs/benchmarks.md describes
// each measurement and records the latest figures.
//
// The benchmarks need Linux; on other systems the program says so and exits.
package main

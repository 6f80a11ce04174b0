//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "sandgate bench: unsupported on %s: the benchmarks need Linux (splice, /proc, namespaces)\n", runtime.GOOS)
	os.Exit(2)
}

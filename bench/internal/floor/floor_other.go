//go:build !linux

// Command floor is the start-up benchmark's smallest Go program of
// sandgate's shape; it needs Linux namespaces and does nothing elsewhere.
package main

import "os"

func main() {
	os.Stderr.WriteString("floor: Linux only\n")
	os.Exit(2)
}

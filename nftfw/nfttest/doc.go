// Package nfttest is test support for the nftfw and setup packages: it
// builds a throwaway "world" of network namespaces (a "host" with its own
// loopback and a veth link to a "remote", on documentation addresses) and
// probes, from a child process running as a chosen uid inside a namespace,
// which connections get through. It is used by tests only, and only on
// Linux.
package nfttest

// Package initproc is PID 1 of a Linux sandbox: the sandgate binary
// re-executed by package sandbox in the sandbox's new namespaces (see
// package initproto for how it is started and what it reports). It makes
// the namespaces' mounts private, mounts their /proc, brings up the
// private loopback and creates the proxy's listening sockets there (netns
// backend), locks the thread that starts CMD down (package confine), starts
// CMD, reports once to the parent, forwards signals to CMD, reaps orphans
// and exits with CMD's status, which makes the kernel kill whatever is left
// in the PID namespace.
package initproc

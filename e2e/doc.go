// Package e2e holds the end-to-end tests of `sandgate run`. They build a fake
// internet out of network namespaces of their own (a "host" and a "remote"
// joined by a veth pair, on documentation addresses, IPv4 and IPv6, with a
// DNS server the tests control), run commands under the real sandgate binary
// in the host namespace, and check from inside the sandbox, with the probe
// program in internal/probe, what can and cannot be reached. The real-client
// tests (git over https and ssh, go mod download, pip, npm) run the real
// tools under the default file system view, in a project directory outside
// /tmp, against servers they start in the remote (an sshd, git http-backend,
// a fake GOPROXY, simple index and npm registry), and check that the result
// is in the workspace and that the test HOME was not written.
//
// The tests need root (network namespaces, a test user). They skip when not
// run as root, unless SANDGATE_REQUIRE_PRIVILEGED is set, in which case they
// fail: CI sets it so that they can never silently not run.
//
// The sandgate binary is built from ./cmd/sandgate, unless
// SANDGATE_E2E_BIN names one to test instead (an installed or patched build).
//
// Everything they create is named with the prefix "sgtest-<pid>" (network
// namespaces, /etc/netns directories, the test user, temporary directories)
// and removed at the end, and leftovers of a crashed earlier run are removed
// at the start.
package e2e

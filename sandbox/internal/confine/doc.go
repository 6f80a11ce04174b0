// Package confine locks down the thread that starts a sandboxed command,
// so that the command and everything it starts inherit the lock-down:
// no_new_privs, no capabilities in any set (bounding and ambient included),
// locked secure bits, a new empty session keyring, a seccomp filter that
// lets socket(2) create only the families a sandbox needs and refuses
// io_uring and the keyrings shared by the uid (see seccomp_linux.go) and,
// with Options.SuperviseConnect, hands every connect(2) to a supervisor
// through a seccomp notification listener,
// and, for the identity backend, the sandbox user's credentials and
// Landlock scopes that close the host's abstract unix sockets and
// signals to processes outside the sandbox.
//
// Everything here acts on the calling thread only (no TSYNC), which the
// caller keeps locked: the rest of the sandbox's init keeps its own
// credentials to reap and forward signals.
package confine

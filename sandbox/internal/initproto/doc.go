// Package initproto is the protocol between a Linux sandbox's parent
// (package sandbox) and the sandbox's PID-1 init (package initproc), the
// one place both sides take it from: how the init is started (its argv and
// the status descriptor it inherits), what it is told (Config), the
// signals passed on, and the one report it sends back (Status, with the
// proxy's listening sockets attached when the init made them).
//
// The two sides are always the same sandgate binary, so the encoding needs
// no versioning. The configuration on the status socket (the way the
// parent sends it) is a compact binary encoding (package wire), decoded
// without reflection on the init's critical path; the argv form (Args)
// and the status reports are JSON.
package initproto

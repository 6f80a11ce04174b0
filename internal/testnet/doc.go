// Package testnet is test support for network namespaces: it creates named
// namespaces (visible to `ip netns exec`) and anonymous ones (which vanish
// with the test process, whatever happens to it), runs functions and child
// processes inside them, and joins two of them with a veth pair on
// documentation addresses. The helpers that take a testing.TB register the
// cleanup with t.Cleanup, so nothing outlives the test, even one that
// fails; the ones that return an error are for a TestMain, which closes
// what it made itself.
//
// Tests use it only on Linux, as root; RequirePrivileged skips a test that
// cannot run, or fails it when SANDGATE_REQUIRE_PRIVILEGED is set (as in
// CI).
package testnet

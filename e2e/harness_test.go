//go:build linux

package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// TestHarness checks the fake internet and the probe without sandgate: run
// directly in the host namespace, every check the sandbox tests expect to
// fail succeeds here, so a failure inside the sandbox is the sandbox's doing
// and not a broken harness. It also checks that the checks expected to
// succeed inside the sandbox can fail.
func TestHarness(t *testing.T) {
	w := requireWorld(t)
	t.Parallel()

	// A process to ptrace: the probe sleeping, started here.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sleeper := w.hostCmd(ctx, nil, t.TempDir(), probeBin, "sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })

	cs := []chk{
		succeeds("tcp", remoteV4+":80"),
		succeeds("tcp", "["+remoteV6+"]:80"),
		succeeds("tcp", remoteV4+":22"),
		succeeds("udp", remoteV4+":9"),
		succeeds("udp", "["+remoteV6+"]:9"),
		succeeds("tcp", dnsV4+":53"),
		succeeds("icmp", remoteV4),
		succeeds("icmp", remoteV6),
		succeeds("packet"),
		succeeds("tcp", w.hostLoop4),
		succeeds("tcp", w.hostLoop6),
		succeeds("tcp", w.hostLAN4),
		succeeds("tcp", w.hostLAN6),
		succeeds("unix", w.hostSock).with("HOST-UNIX"),
		succeeds("unixsocket"),
		succeeds("iouring"),
		succeeds("resolve", "remote.test").with(remoteV4, remoteV6),
		succeeds("resolve", "remote6.test").with(remoteV6),
		fails("resolve", "nonexistent.test"),
		succeeds("http", "http://remote4.test/").with("proto=http", "local="+remoteV4+":80"),
		succeeds("http", "http://remote6.test/").with("local=[" + remoteV6 + "]:80"),
		succeeds("https", "https://remote.test/", w.caFile).with("proto=https", "host=remote.test"),
		succeeds("https", "https://remote6.test/", w.caFile).with("proto=https", "local=["+remoteV6+"]:443"),
		succeeds("ptrace", strconv.Itoa(sleeper.Process.Pid)),
		// Without a proxy in the environment these cannot work: they show the
		// proxy checks fail when there is no proxy.
		fails("socks5", "remote.test:22"),
		fails("connect", "remote.test:22"),
		fails("env", "HTTP_PROXY"),
		// Root holds capabilities: the check can fail.
		fails("nocaps"),
		succeeds("loopback"),
	}
	o := w.runHost(t, probeArgv(cs)...)
	expectProbes(t, o, cs)
	for _, name := range []string{"remote.test", "remote6.test", "nonexistent.test"} {
		if !w.dns.asked(name) {
			t.Errorf("the DNS server never saw %s; it saw %v", name, w.dns.log())
		}
	}
}

//go:build linux

package nftfw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/testnet"
	"github.com/sandgate/sandgate/nftfw/nfttest"
	"github.com/sandgate/sandgate/ruleplan"
)

// mustNft converts expressions for the nftables library, as Apply does.
func mustNft(t *testing.T, exprs []Expr) []expr.Any {
	t.Helper()
	out := make([]expr.Any, len(exprs))
	for i, e := range exprs {
		x, err := nftExpr(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = x
	}
	return out
}

func TestMain(m *testing.M) {
	nfttest.MaybeProbe()
	maybeCounterRole()
	os.Exit(m.Run())
}

// TestApplyVerifyRemove installs, reads back and removes the table in a
// namespace of the test's own, and checks that Verify names each kind of
// difference.
func TestApplyVerifyRemove(t *testing.T) {
	ns := testnet.NewAnonymous(t).Path
	plan := mustPlan(t, proxyPorts, false)

	diffs, err := Verify(ns, plan, offUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || !strings.Contains(diffs[0], "missing") {
		t.Fatalf("Verify before Apply = %q, want the table missing", diffs)
	}

	if err := Apply(ns, plan, offUID); err != nil {
		t.Fatal(err)
	}
	// Applying twice replaces, it does not add.
	if err := Apply(ns, plan, offUID); err != nil {
		t.Fatal(err)
	}
	if diffs, err := Verify(ns, plan, offUID); err != nil || diffs != nil {
		t.Fatalf("Verify after Apply = %q, %v; want no differences", diffs, err)
	}
	live, err := Read(ns)
	if err != nil || live == nil {
		t.Fatalf("Read = %v, %v", live, err)
	}
	if !slices.Equal(live.Ports(), proxyPorts) {
		t.Errorf("live proxy ports %v, want %v", live.Ports(), proxyPorts)
	}
	if len(live.rules) != len(plan.Rules)+1 { // and the redirected UDP's
		t.Errorf("%d rules live after two Applies, want %d", len(live.rules), len(plan.Rules)+1)
	}
	if len(live.inputRules) != 2 || live.inputRules[0].name != InputRuleName || live.inputRules[1].name != InputUDPRuleName {
		t.Errorf("input chain after two Applies: %+v, want the rules %s and %s", live.inputRules, InputRuleName, InputUDPRuleName)
	}

	wantDiff := func(name string, diffs []string, err error, want ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, w := range want {
			if !slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, w) }) {
				t.Errorf("%s: differences %q lack %q", name, diffs, w)
			}
		}
	}
	d, err := Verify(ns, mustPlan(t, []uint16{3128}, false), offUID)
	wantDiff("other ports", d, err, "set proxy_ports holds ports [47100 47101], expected [3128]")
	d, err = Verify(ns, plan, offUID+7)
	wantDiff("other uid", d, err, "the rules apply to uid 4000101, expected uid 4000108")
	if len(d) != 1 {
		t.Errorf("other uid: %q, want one line", d)
	}
	d, err = Verify(ns, mustPlan(t, proxyPorts, true), offUID)
	wantDiff("local binding", d, err,
		"unexpected rule "+ruleplan.NameLocalTCP, "unexpected rule "+ruleplan.NameLocalUDP, "unexpected rule "+ruleplan.NameLocalOther)

	// Someone else's rule in our chain, and a changed rule.
	c, done, err := dial(ns)
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	ch := &nftables.Chain{Name: ChainName, Table: tbl}
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
	rules, err := c.GetRules(tbl, ch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if readComment(r.UserData) == ruleplan.NameLocalUDP {
			r.Exprs = r.Exprs[:len(r.Exprs)-1]
			r.Exprs = append(r.Exprs, &expr.Verdict{Kind: expr.VerdictAccept})
			c.ReplaceRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	done()
	d, err = Verify(ns, plan, offUID)
	wantDiff("tampered", d, err, "unexpected rule without a name", "rule "+ruleplan.NameLocalUDP+" does not match what this version installs")

	// Apply repairs it.
	if err := Apply(ns, plan, offUID); err != nil {
		t.Fatal(err)
	}
	if diffs, err := Verify(ns, plan, offUID); err != nil || diffs != nil {
		t.Fatalf("Verify after repair = %q, %v", diffs, err)
	}

	// The input rule changed (another mark), then gone, then its chain gone.
	inputRules := func() (*nftables.Conn, func(), *nftables.Table, *nftables.Chain, []*nftables.Rule) {
		t.Helper()
		c, done, err := dial(ns)
		if err != nil {
			t.Fatal(err)
		}
		tbl := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
		ch := &nftables.Chain{Name: InputChainName, Table: tbl}
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			done()
			t.Fatal(err)
		}
		if len(rules) != 2 {
			done()
			t.Fatalf("input chain has %d rules, want 2 (TCP's, then UDP's)", len(rules))
		}
		return c, done, tbl, ch, rules
	}
	replaceInput := func(label string, exprs []Expr) {
		t.Helper()
		c, done, _, _, rules := inputRules()
		rules[0].Exprs = mustNft(t, exprs)
		c.ReplaceRule(rules[0])
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		done()
		d, err := Verify(ns, plan, offUID)
		wantDiff(label, d, err, "rule "+InputRuleName+" does not match what this version installs")
		if len(d) != 1 {
			t.Errorf("%s: %q, want one line", label, d)
		}
		if err := Apply(ns, plan, offUID); err != nil {
			t.Fatal(err)
		}
	}
	// Another mark.
	exprs := proxyPortsGuard()
	for i, e := range exprs {
		if cmp, ok := e.(Cmp); ok && cmp.Op == cmpNeq {
			exprs[i] = Cmp{Op: cmpNeq, Register: cmp.Register, Data: []byte{1, 0, 0, 0}}
		}
	}
	replaceInput("input rule with another mark", exprs)
	// No socket expression (one the nftables library does not decode):
	// the rule would then refuse sandgate's proxy as well.
	exprs = slices.DeleteFunc(proxyPortsGuard(), func(e Expr) bool { _, ok := e.(Socket); return ok })
	replaceInput("input rule without its socket match", exprs)
	// The socket's wildcard flag instead of its mark.
	exprs = proxyPortsGuard()
	for i, e := range exprs {
		if _, ok := e.(Socket); ok {
			exprs[i] = Socket{Key: uint32(expr.SocketKeyWildcard), Register: reg}
		}
	}
	replaceInput("input rule on another socket key", exprs)

	c, done, _, _, rules = inputRules()
	if err := c.DelRule(rules[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	done()
	d, err = Verify(ns, plan, offUID)
	wantDiff("input rule missing", d, err, "rule "+InputRuleName+" is missing from chain input")
	if len(d) != 1 {
		t.Errorf("input rule missing: %q, want one line", d)
	}
	c, done, err = dial(ns)
	if err != nil {
		t.Fatal(err)
	}
	c.DelChain(&nftables.Chain{Name: InputChainName, Table: tbl})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	done()
	d, err = Verify(ns, plan, offUID)
	wantDiff("input chain missing", d, err, "chain input is missing from "+tableDesc)
	if err := Apply(ns, plan, offUID); err != nil {
		t.Fatal(err)
	}
	if diffs, err := Verify(ns, plan, offUID); err != nil || diffs != nil {
		t.Fatalf("Verify after the second repair = %q, %v", diffs, err)
	}

	// The largest set there may be goes in; a larger one is refused.
	many := make([]uint16, ruleplan.MaxPorts)
	for i := range many {
		many[i] = uint16(20000 + i)
	}
	if err := Apply(ns, mustPlan(t, many, false), offUID); err != nil {
		t.Fatalf("Apply with %d ports: %v", ruleplan.MaxPorts, err)
	}
	if diffs, err := Verify(ns, mustPlan(t, many, false), offUID); err != nil || diffs != nil {
		t.Fatalf("Verify with %d ports = %q, %v", ruleplan.MaxPorts, diffs, err)
	}
	if err := Apply(ns, mustPlan(t, append(many, 30000), false), offUID); err == nil {
		t.Errorf("Apply with %d ports succeeded", ruleplan.MaxPorts+1)
	}

	if err := Remove(ns); err != nil {
		t.Fatal(err)
	}
	if live, err := Read(ns); err != nil || live != nil {
		t.Fatalf("Read after Remove = %v, %v; want nothing", live, err)
	}
	if err := Remove(ns); err != nil {
		t.Fatalf("Remove of an absent table: %v", err)
	}
}

func tcp(host string, port int) nfttest.Check {
	return nfttest.Check{Kind: "tcp", Addr: net.JoinHostPort(host, strconv.Itoa(port))}
}

func kind(k, host string, port int) nfttest.Check {
	return nfttest.Check{Kind: k, Addr: net.JoinHostPort(host, strconv.Itoa(port))}
}

func icmp(host string) nfttest.Check { return nfttest.Check{Kind: "icmp", Addr: host} }

func want(c nfttest.Check, outcome string) nfttest.Expect {
	return nfttest.Expect{Check: c, Want: outcome}
}

// TestFailedApplyKeepsOldRules makes the second Apply's transaction fail
// (an element of the wrong size for the set) and shows that the first
// Apply's rules are still installed and still enforced.
func TestFailedApplyKeepsOldRules(t *testing.T) {
	w := nfttest.NewWorld(t, 47200)
	w.ServeMarkedTCP(t, 47100, ruleplan.ProxySocketMark)
	old := mustPlan(t, []uint16{47100}, false)
	if err := Apply(w.Host, old, offUID); err != nil {
		t.Fatal(err)
	}
	failing := &Netlink{NetNS: w.Host, beforeFlush: func(c *nftables.Conn, s *nftables.Set) {
		if err := c.SetAddElements(s, []nftables.SetElement{{Key: []byte{1, 2, 3}}}); err != nil {
			t.Errorf("queueing the bad element: %v", err)
		}
	}}
	err := ApplyTo(failing, mustPlan(t, []uint16{47200}, true), offUID)
	if err == nil {
		t.Fatal("Apply with a bad element succeeded")
	}
	if !strings.Contains(err.Error(), "unchanged") {
		t.Errorf("error %q does not say the old rules stay", err)
	}
	if diffs, err := Verify(w.Host, old, offUID); err != nil || diffs != nil {
		t.Fatalf("after the failed Apply, Verify(old plan) = %q, %v; want no differences", diffs, err)
	}
	nfttest.ExpectAll(t, "offline", w.Host, offUID, offGID,
		want(tcp("127.0.0.1", 47100), nfttest.OK),
		want(tcp("127.0.0.1", 47200), nfttest.Refused), // the failed plan would have opened it
		want(kind("udp", "127.0.0.1", nfttest.LocalUDPPort), nfttest.Denied),
	)
}

// TestRulesByBehaviour proves the rules by what the offline user, the
// online user and root can and cannot reach from the host namespace.
func TestRulesByBehaviour(t *testing.T) {
	t.Parallel()
	w := nfttest.NewWorld(t, nonProxyPort)
	w.ServeMarkedTCP(t, 47100, ruleplan.ProxySocketMark) // as sandgate's proxy does
	w.ServeMarkedTCP(t, 47101, ruleplan.ProxySocketMark)
	if err := Apply(w.Host, mustPlan(t, proxyPorts, false), offUID); err != nil {
		t.Fatal(err)
	}

	remote := []nfttest.Check{
		tcp(nfttest.RemoteV4, nfttest.RemoteTCPPort),
		tcp(nfttest.RemoteV6, nfttest.RemoteTCPPort),
		kind("mptcp", nfttest.RemoteV4, nfttest.RemoteTCPPort),
		kind("tcp6mapped", nfttest.RemoteV4, nfttest.RemoteTCPPort),
		kind("udp", nfttest.RemoteV4, nfttest.RemoteUDPPort),
		kind("udp", nfttest.RemoteV6, nfttest.RemoteUDPPort),
		icmp(nfttest.RemoteV4),
		icmp(nfttest.RemoteV6),
	}
	localOther := []nfttest.Check{
		kind("udp", "127.0.0.1", nfttest.LocalUDPPort),
		kind("udp", "::1", nfttest.LocalUDPPort),
		kind("udp", nfttest.HostV4, nfttest.LocalUDPPort),
		icmp("127.0.0.1"),
		icmp("::1"),
		tcp("127.0.0.1", nonProxyPort),
		tcp("::1", nonProxyPort),
		tcp(nfttest.HostV4, nonProxyPort),
		tcp(nfttest.HostV6, nonProxyPort),
		kind("tcp6mapped", "127.0.0.1", nonProxyPort),
	}
	proxy := []nfttest.Check{
		tcp("127.0.0.1", 47100),
		tcp("::1", 47101),
		tcp(nfttest.HostV4, 47100), // the host's own LAN address is local
		tcp(nfttest.HostV6, 47101),
		kind("tcp6mapped", "127.0.0.1", 47100),
		kind("mptcp", "127.0.0.1", 47101),
	}

	var offline []nfttest.Expect
	for _, c := range remote {
		offline = append(offline, want(c, nfttest.Blocked))
	}
	for _, c := range localOther {
		o := nfttest.Denied // dropped in the output hook: sendmsg says EPERM
		switch {
		case strings.HasPrefix(c.Kind, "tcp"):
			o = nfttest.Refused // rejected with a reset: fails at once
		case c.Kind == "icmp":
			o = nfttest.Blocked // IPv6 echo sockets do not report the drop
		}
		offline = append(offline, want(c, o))
	}
	for _, c := range proxy {
		offline = append(offline, want(c, nfttest.OK))
	}
	var open []nfttest.Expect
	for _, c := range slices.Concat(remote, localOther, proxy) {
		open = append(open, want(c, nfttest.OK))
	}

	nfttest.ExpectAll(t, "offline", w.Host, offUID, offGID, offline...)
	nfttest.ExpectAll(t, "online", w.Host, onUID, onGID, open...)
	nfttest.ExpectAll(t, "root", w.Host, 0, 0, open...)

	// With allow_local_binding every local destination opens, UDP and
	// ICMP too; the rest of the world stays shut.
	if err := Apply(w.Host, mustPlan(t, proxyPorts, true), offUID); err != nil {
		t.Fatal(err)
	}
	var alb []nfttest.Expect
	for _, c := range remote {
		alb = append(alb, want(c, nfttest.Blocked))
	}
	for _, c := range slices.Concat(localOther, proxy) {
		alb = append(alb, want(c, nfttest.OK))
	}
	nfttest.ExpectAll(t, "offline, allow_local_binding", w.Host, offUID, offGID, alb...)

	// With no proxy ports (a run without network), local TCP is shut too.
	if err := Apply(w.Host, mustPlan(t, nil, false), offUID); err != nil {
		t.Fatal(err)
	}
	nfttest.ExpectAll(t, "offline, no proxy ports", w.Host, offUID, offGID,
		want(tcp("127.0.0.1", 47100), nfttest.Refused),
		want(tcp(nfttest.HostV6, 47101), nfttest.Refused),
		want(kind("udp", "::1", nfttest.LocalUDPPort), nfttest.Denied),
	)
}

// TestProxyPortsServedOnlyByMarkedListeners proves the input rule: a
// reserved proxy port served by a listener without ruleplan.ProxySocketMark (a would-be
// relay) refuses every connection, from the offline user, the online user,
// root and another host alike, while a marked listener (sandgate's proxy)
// serves the offline user and ports outside the set are untouched.
func TestProxyPortsServedOnlyByMarkedListeners(t *testing.T) {
	t.Parallel()
	const marked, unmarked, split = 47100, 47101, 47102
	w := nfttest.NewWorld(t, unmarked, nonProxyPort) // unmarked, on every address
	w.ServeMarkedTCP(t, marked, ruleplan.ProxySocketMark)
	// split: sandgate's marked listener on 127.0.0.1, someone else's
	// unmarked one on ::1 at the same port.
	for _, l := range []struct {
		network, addr string
		mark          int
	}{{"tcp4", "127.0.0.1", ruleplan.ProxySocketMark}, {"tcp6", "::1", 0}} {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if l.mark != 0 {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, l.mark)
				}
			})
			return errors.Join(err, serr)
		}}
		var ln net.Listener
		if err := w.HostNS.Do(func() (err error) {
			ln, err = lc.Listen(context.Background(), l.network, net.JoinHostPort(l.addr, strconv.Itoa(split)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	ports := []uint16{marked, unmarked, split}

	// Without the rules, the unmarked listeners serve everyone.
	nfttest.ExpectAll(t, "root, no rules", w.Host, 0, 0,
		want(tcp("127.0.0.1", unmarked), nfttest.OK),
		want(tcp("::1", split), nfttest.OK),
	)

	for _, alb := range []bool{false, true} {
		if err := Apply(w.Host, mustPlan(t, ports, alb), offUID); err != nil {
			t.Fatal(err)
		}
		label := func(who string) string { return fmt.Sprintf("%s, allow_local_binding=%v", who, alb) }
		nfttest.ExpectAll(t, label("offline"), w.Host, offUID, offGID,
			want(tcp("127.0.0.1", marked), nfttest.OK),
			want(tcp("::1", marked), nfttest.OK),
			want(tcp(nfttest.HostV4, marked), nfttest.OK),
			want(kind("tcp6mapped", "127.0.0.1", marked), nfttest.OK),
			want(kind("mptcp", "127.0.0.1", marked), nfttest.OK),
			want(tcp("127.0.0.1", unmarked), nfttest.Refused),
			want(tcp("::1", unmarked), nfttest.Refused),
			want(tcp(nfttest.HostV4, unmarked), nfttest.Refused),
			want(tcp(nfttest.HostV6, unmarked), nfttest.Refused),
			want(kind("tcp6mapped", "127.0.0.1", unmarked), nfttest.Refused),
			want(kind("mptcp", "::1", unmarked), nfttest.Refused),
			want(tcp("127.0.0.1", split), nfttest.OK),
			want(tcp("::1", split), nfttest.Refused),
		)
		for _, id := range []struct {
			who      string
			uid, gid uint32
		}{{"online", onUID, onGID}, {"root", 0, 0}} {
			nfttest.ExpectAll(t, label(id.who), w.Host, id.uid, id.gid,
				want(tcp("127.0.0.1", marked), nfttest.OK),
				want(tcp("127.0.0.1", unmarked), nfttest.Refused),
				want(tcp("::1", unmarked), nfttest.Refused),
				want(tcp(nfttest.HostV4, unmarked), nfttest.Refused),
				want(tcp("::1", split), nfttest.Refused),
				want(tcp("127.0.0.1", nonProxyPort), nfttest.OK),
				want(tcp("::1", nonProxyPort), nfttest.OK),
			)
		}
		// Another host: the rule applies to every source.
		nfttest.ExpectAll(t, label("remote host"), w.Remote, 0, 0,
			want(tcp(nfttest.HostV4, unmarked), nfttest.Refused),
			want(tcp(nfttest.HostV6, unmarked), nfttest.Refused),
			want(tcp(nfttest.HostV4, nonProxyPort), nfttest.OK),
		)
	}
	// With allow_local_binding every local port is open to the offline user.
	nfttest.ExpectAll(t, "offline, allow_local_binding", w.Host, offUID, offGID,
		want(tcp("127.0.0.1", nonProxyPort), nfttest.OK),
	)
}

// TestVerifyDormantTable: a dormant table keeps every rule while the
// kernel evaluates none of them (the offline user reaches the remote
// namespace), and Verify says so; Apply makes the table anew, awake, and
// the rules hold again.
func TestVerifyDormantTable(t *testing.T) {
	t.Parallel()
	w := nfttest.NewWorld(t)
	plan := mustPlan(t, proxyPorts, false)
	if err := Apply(w.Host, plan, offUID); err != nil {
		t.Fatal(err)
	}
	remote := tcp(nfttest.RemoteV4, nfttest.RemoteTCPPort)
	nfttest.ExpectAll(t, "offline, table awake", w.Host, offUID, offGID, want(remote, nfttest.Blocked))

	if err := nfttest.SetTableFlags(w.Host, TableName, unix.NFT_TABLE_F_DORMANT); err != nil {
		t.Fatal(err)
	}
	nfttest.ExpectAll(t, "offline, table dormant", w.Host, offUID, offGID, want(remote, nfttest.OK))
	live, err := Read(w.Host)
	if err != nil || live == nil {
		t.Fatalf("Read of the dormant table: %v, %v", live, err)
	}
	if live.tableFlags != unix.NFT_TABLE_F_DORMANT {
		t.Errorf("Read: table flags %#x, want %#x (dormant)", live.tableFlags, unix.NFT_TABLE_F_DORMANT)
	}
	diffs, err := Verify(w.Host, plan, offUID)
	if err != nil || !slices.Equal(diffs, []string{"sandgate's table is dormant: the kernel does not evaluate its rules"}) {
		t.Errorf("Verify of the dormant table = %q, %v; want it dormant, and nothing else", diffs, err)
	}

	if err := Apply(w.Host, plan, offUID); err != nil {
		t.Fatal(err)
	}
	if diffs, err := Verify(w.Host, plan, offUID); err != nil || diffs != nil {
		t.Errorf("Verify after Apply = %q, %v; want nothing", diffs, err)
	}
	nfttest.ExpectAll(t, "offline, after Apply", w.Host, offUID, offGID, want(remote, nfttest.Blocked))
}

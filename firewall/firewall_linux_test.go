//go:build linux

package firewall

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

	"github.com/sandgate/sandgate/firewall/fwtest"
	"github.com/sandgate/sandgate/ruleplan"
)

func TestMain(m *testing.M) {
	fwtest.MaybeProbe()
	os.Exit(m.Run())
}

// Test identities: uids that need not exist (the rules match numbers).
const (
	offUID, offGID = 4000101, 4000101
	onUID, onGID   = 4000102, 4000102
)

// Ports of the test plans.
var (
	proxyPorts   = []uint16{47100, 47101}
	nonProxyPort = 8080
)

func mustPlan(t *testing.T, ports []uint16, alb bool) ruleplan.Plan {
	t.Helper()
	p, err := ruleplan.Build(ports, alb)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRenderRefusesWhatItCannotRender(t *testing.T) {
	good := mustPlan(t, proxyPorts, false)
	if _, err := render(good, offUID); err != nil {
		t.Fatalf("render(good plan): %v", err)
	}
	if _, err := render(good, 0); err == nil {
		t.Error("render for uid 0 succeeded; root must never be the offline user")
	}
	online := mustPlan(t, proxyPorts, false)
	online.Rules[0].Identity = ruleplan.Online
	if _, err := render(online, offUID); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("render(rule for the online identity) = %v, want a refusal", err)
	}
	odd := mustPlan(t, proxyPorts, false)
	odd.Rules[2].Ports = []ruleplan.PortRange{{Lo: 1, Hi: 100}}
	if _, err := render(odd, offUID); err == nil || !strings.Contains(err.Error(), "complement") {
		t.Errorf("render(rule with arbitrary ports) = %v, want a refusal", err)
	}
	unsorted := mustPlan(t, proxyPorts, false)
	unsorted.ProxyPorts = []uint16{47101, 47100}
	if _, err := render(unsorted, offUID); err == nil {
		t.Error("render(unsorted ports) succeeded")
	}
}

func TestRenderedRulesAreTaggedAndMatchTheOfflineUID(t *testing.T) {
	for _, alb := range []bool{false, true} {
		p := mustPlan(t, proxyPorts, alb)
		r, err := render(p, offUID)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.rules) != len(p.Rules) {
			t.Fatalf("alb=%v: %d nft rules for %d plan rules", alb, len(r.rules), len(p.Rules))
		}
		for i, nr := range r.rules {
			if nr.name != p.Rules[i].Name {
				t.Errorf("rule %d is named %q, want %q", i, nr.name, p.Rules[i].Name)
			}
			if got := readComment(comment(nr.name)); got != nr.name {
				t.Errorf("comment round trip: %q became %q", nr.name, got)
			}
			lr := takeApart(nr.exprs, nr.name, 0)
			if !lr.hasUID || lr.uid != offUID {
				t.Errorf("rule %s does not start with meta skuid == %d", nr.name, offUID)
			}
			// Every rule ends in a verdict that refuses.
			switch last := nr.exprs[len(nr.exprs)-1].(type) {
			case *expr.Verdict:
				if last.Kind != expr.VerdictDrop {
					t.Errorf("rule %s ends in verdict %v", nr.name, last.Kind)
				}
			case *expr.Reject:
			default:
				t.Errorf("rule %s ends in %T", nr.name, last)
			}
		}
	}
	// Malformed comments do not panic.
	for _, ud := range [][]byte{nil, {0}, {0, 9, 'a'}, {1, 1, 'x', 0, 2, 'o', 'k'}} {
		readComment(ud)
	}
}

// TestApplyVerifyRemove installs, reads back and removes the table in a
// namespace of the test's own, and checks that Verify names each kind of
// difference.
func TestApplyVerifyRemove(t *testing.T) {
	ns := fwtest.NewNetns(t)
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
	if len(live.rules) != len(plan.Rules) {
		t.Errorf("%d rules live after two Applies, want %d", len(live.rules), len(plan.Rules))
	}
	if len(live.inputRules) != 1 || live.inputRules[0].name != InputRuleName {
		t.Errorf("input chain after two Applies: %+v, want the one rule %s", live.inputRules, InputRuleName)
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
		if len(rules) != 1 {
			done()
			t.Fatalf("input chain has %d rules, want 1", len(rules))
		}
		return c, done, tbl, ch, rules
	}
	replaceInput := func(label string, exprs []expr.Any) {
		t.Helper()
		c, done, _, _, rules := inputRules()
		rules[0].Exprs = exprs
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
		if cmp, ok := e.(*expr.Cmp); ok && cmp.Op == expr.CmpOpNeq {
			exprs[i] = &expr.Cmp{Op: expr.CmpOpNeq, Register: cmp.Register, Data: []byte{1, 0, 0, 0}}
		}
	}
	replaceInput("input rule with another mark", exprs)
	// No socket expression (one the nftables library does not decode):
	// the rule would then refuse sandgate's proxy as well.
	exprs = slices.DeleteFunc(proxyPortsGuard(), func(e expr.Any) bool { _, ok := e.(*expr.Socket); return ok })
	replaceInput("input rule without its socket match", exprs)
	// The socket's wildcard flag instead of its mark.
	exprs = proxyPortsGuard()
	for i, e := range exprs {
		if _, ok := e.(*expr.Socket); ok {
			exprs[i] = &expr.Socket{Key: expr.SocketKeyWildcard, Register: reg}
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
	many := make([]uint16, MaxPorts)
	for i := range many {
		many[i] = uint16(20000 + i)
	}
	if err := Apply(ns, mustPlan(t, many, false), offUID); err != nil {
		t.Fatalf("Apply with %d ports: %v", MaxPorts, err)
	}
	if diffs, err := Verify(ns, mustPlan(t, many, false), offUID); err != nil || diffs != nil {
		t.Fatalf("Verify with %d ports = %q, %v", MaxPorts, diffs, err)
	}
	if err := Apply(ns, mustPlan(t, append(many, 30000), false), offUID); err == nil {
		t.Errorf("Apply with %d ports succeeded", MaxPorts+1)
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

func tcp(host string, port int) fwtest.Check {
	return fwtest.Check{Kind: "tcp", Addr: net.JoinHostPort(host, strconv.Itoa(port))}
}

func kind(k, host string, port int) fwtest.Check {
	return fwtest.Check{Kind: k, Addr: net.JoinHostPort(host, strconv.Itoa(port))}
}

func icmp(host string) fwtest.Check { return fwtest.Check{Kind: "icmp", Addr: host} }

func want(c fwtest.Check, outcome string) fwtest.Expect {
	return fwtest.Expect{Check: c, Want: outcome}
}

// TestFailedApplyKeepsOldRules makes the second Apply's transaction fail
// (an element of the wrong size for the set) and shows that the first
// Apply's rules are still installed and still enforced.
func TestFailedApplyKeepsOldRules(t *testing.T) {
	w := fwtest.NewWorld(t, 47200)
	w.ServeMarkedTCP(t, 47100, ProxySocketMark)
	old := mustPlan(t, []uint16{47100}, false)
	if err := Apply(w.Host, old, offUID); err != nil {
		t.Fatal(err)
	}
	beforeFlush = func(c *nftables.Conn, s *nftables.Set) {
		if err := c.SetAddElements(s, []nftables.SetElement{{Key: []byte{1, 2, 3}}}); err != nil {
			t.Errorf("queueing the bad element: %v", err)
		}
	}
	t.Cleanup(func() { beforeFlush = nil })
	err := Apply(w.Host, mustPlan(t, []uint16{47200}, true), offUID)
	beforeFlush = nil
	if err == nil {
		t.Fatal("Apply with a bad element succeeded")
	}
	if !strings.Contains(err.Error(), "unchanged") {
		t.Errorf("error %q does not say the old rules stay", err)
	}
	if diffs, err := Verify(w.Host, old, offUID); err != nil || diffs != nil {
		t.Fatalf("after the failed Apply, Verify(old plan) = %q, %v; want no differences", diffs, err)
	}
	fwtest.ExpectAll(t, "offline", w.Host, offUID, offGID,
		want(tcp("127.0.0.1", 47100), fwtest.OK),
		want(tcp("127.0.0.1", 47200), fwtest.Refused), // the failed plan would have opened it
		want(kind("udp", "127.0.0.1", fwtest.LocalUDPPort), fwtest.Denied),
	)
}

// TestRulesByBehaviour proves the rules by what the offline user, the
// online user and root can and cannot reach from the host namespace.
func TestRulesByBehaviour(t *testing.T) {
	t.Parallel()
	w := fwtest.NewWorld(t, nonProxyPort)
	w.ServeMarkedTCP(t, 47100, ProxySocketMark) // as sandgate's proxy does
	w.ServeMarkedTCP(t, 47101, ProxySocketMark)
	if err := Apply(w.Host, mustPlan(t, proxyPorts, false), offUID); err != nil {
		t.Fatal(err)
	}

	remote := []fwtest.Check{
		tcp(fwtest.RemoteV4, fwtest.RemoteTCPPort),
		tcp(fwtest.RemoteV6, fwtest.RemoteTCPPort),
		kind("mptcp", fwtest.RemoteV4, fwtest.RemoteTCPPort),
		kind("tcp6mapped", fwtest.RemoteV4, fwtest.RemoteTCPPort),
		kind("udp", fwtest.RemoteV4, fwtest.RemoteUDPPort),
		kind("udp", fwtest.RemoteV6, fwtest.RemoteUDPPort),
		icmp(fwtest.RemoteV4),
		icmp(fwtest.RemoteV6),
	}
	localOther := []fwtest.Check{
		kind("udp", "127.0.0.1", fwtest.LocalUDPPort),
		kind("udp", "::1", fwtest.LocalUDPPort),
		kind("udp", fwtest.HostV4, fwtest.LocalUDPPort),
		icmp("127.0.0.1"),
		icmp("::1"),
		tcp("127.0.0.1", nonProxyPort),
		tcp("::1", nonProxyPort),
		tcp(fwtest.HostV4, nonProxyPort),
		tcp(fwtest.HostV6, nonProxyPort),
		kind("tcp6mapped", "127.0.0.1", nonProxyPort),
	}
	proxy := []fwtest.Check{
		tcp("127.0.0.1", 47100),
		tcp("::1", 47101),
		tcp(fwtest.HostV4, 47100), // the host's own LAN address is local
		tcp(fwtest.HostV6, 47101),
		kind("tcp6mapped", "127.0.0.1", 47100),
		kind("mptcp", "127.0.0.1", 47101),
	}

	var offline []fwtest.Expect
	for _, c := range remote {
		offline = append(offline, want(c, fwtest.Blocked))
	}
	for _, c := range localOther {
		o := fwtest.Denied // dropped in the output hook: sendmsg says EPERM
		switch {
		case strings.HasPrefix(c.Kind, "tcp"):
			o = fwtest.Refused // rejected with a reset: fails at once
		case c.Kind == "icmp":
			o = fwtest.Blocked // IPv6 echo sockets do not report the drop
		}
		offline = append(offline, want(c, o))
	}
	for _, c := range proxy {
		offline = append(offline, want(c, fwtest.OK))
	}
	var open []fwtest.Expect
	for _, c := range slices.Concat(remote, localOther, proxy) {
		open = append(open, want(c, fwtest.OK))
	}

	fwtest.ExpectAll(t, "offline", w.Host, offUID, offGID, offline...)
	fwtest.ExpectAll(t, "online", w.Host, onUID, onGID, open...)
	fwtest.ExpectAll(t, "root", w.Host, 0, 0, open...)

	// With allow_local_binding every local destination opens, UDP and
	// ICMP too; the rest of the world stays shut.
	if err := Apply(w.Host, mustPlan(t, proxyPorts, true), offUID); err != nil {
		t.Fatal(err)
	}
	var alb []fwtest.Expect
	for _, c := range remote {
		alb = append(alb, want(c, fwtest.Blocked))
	}
	for _, c := range slices.Concat(localOther, proxy) {
		alb = append(alb, want(c, fwtest.OK))
	}
	fwtest.ExpectAll(t, "offline, allow_local_binding", w.Host, offUID, offGID, alb...)

	// With no proxy ports (a run without network), local TCP is shut too.
	if err := Apply(w.Host, mustPlan(t, nil, false), offUID); err != nil {
		t.Fatal(err)
	}
	fwtest.ExpectAll(t, "offline, no proxy ports", w.Host, offUID, offGID,
		want(tcp("127.0.0.1", 47100), fwtest.Refused),
		want(tcp(fwtest.HostV6, 47101), fwtest.Refused),
		want(kind("udp", "::1", fwtest.LocalUDPPort), fwtest.Denied),
	)
}

// TestProxyPortsServedOnlyByMarkedListeners proves the input rule: a
// reserved proxy port served by a listener without ProxySocketMark (a would-be
// relay) refuses every connection, from the offline user, the online user,
// root and another host alike, while a marked listener (sandgate's proxy)
// serves the offline user and ports outside the set are untouched.
func TestProxyPortsServedOnlyByMarkedListeners(t *testing.T) {
	t.Parallel()
	const marked, unmarked, split = 47100, 47101, 47102
	w := fwtest.NewWorld(t, unmarked, nonProxyPort) // unmarked, on every address
	w.ServeMarkedTCP(t, marked, ProxySocketMark)
	// split: sandgate's marked listener on 127.0.0.1, someone else's
	// unmarked one on ::1 at the same port.
	for _, l := range []struct {
		network, addr string
		mark          int
	}{{"tcp4", "127.0.0.1", ProxySocketMark}, {"tcp6", "::1", 0}} {
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
		if err := fwtest.Do(w.Host, func() (err error) {
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
	fwtest.ExpectAll(t, "root, no rules", w.Host, 0, 0,
		want(tcp("127.0.0.1", unmarked), fwtest.OK),
		want(tcp("::1", split), fwtest.OK),
	)

	for _, alb := range []bool{false, true} {
		if err := Apply(w.Host, mustPlan(t, ports, alb), offUID); err != nil {
			t.Fatal(err)
		}
		label := func(who string) string { return fmt.Sprintf("%s, allow_local_binding=%v", who, alb) }
		fwtest.ExpectAll(t, label("offline"), w.Host, offUID, offGID,
			want(tcp("127.0.0.1", marked), fwtest.OK),
			want(tcp("::1", marked), fwtest.OK),
			want(tcp(fwtest.HostV4, marked), fwtest.OK),
			want(kind("tcp6mapped", "127.0.0.1", marked), fwtest.OK),
			want(kind("mptcp", "127.0.0.1", marked), fwtest.OK),
			want(tcp("127.0.0.1", unmarked), fwtest.Refused),
			want(tcp("::1", unmarked), fwtest.Refused),
			want(tcp(fwtest.HostV4, unmarked), fwtest.Refused),
			want(tcp(fwtest.HostV6, unmarked), fwtest.Refused),
			want(kind("tcp6mapped", "127.0.0.1", unmarked), fwtest.Refused),
			want(kind("mptcp", "::1", unmarked), fwtest.Refused),
			want(tcp("127.0.0.1", split), fwtest.OK),
			want(tcp("::1", split), fwtest.Refused),
		)
		for _, id := range []struct {
			who      string
			uid, gid uint32
		}{{"online", onUID, onGID}, {"root", 0, 0}} {
			fwtest.ExpectAll(t, label(id.who), w.Host, id.uid, id.gid,
				want(tcp("127.0.0.1", marked), fwtest.OK),
				want(tcp("127.0.0.1", unmarked), fwtest.Refused),
				want(tcp("::1", unmarked), fwtest.Refused),
				want(tcp(fwtest.HostV4, unmarked), fwtest.Refused),
				want(tcp("::1", split), fwtest.Refused),
				want(tcp("127.0.0.1", nonProxyPort), fwtest.OK),
				want(tcp("::1", nonProxyPort), fwtest.OK),
			)
		}
		// Another host: the rule applies to every source.
		fwtest.ExpectAll(t, label("remote host"), w.Remote, 0, 0,
			want(tcp(fwtest.HostV4, unmarked), fwtest.Refused),
			want(tcp(fwtest.HostV6, unmarked), fwtest.Refused),
			want(tcp(fwtest.HostV4, nonProxyPort), fwtest.OK),
		)
	}
	// With allow_local_binding every local port is open to the offline user.
	fwtest.ExpectAll(t, "offline, allow_local_binding", w.Host, offUID, offGID,
		want(tcp("127.0.0.1", nonProxyPort), fwtest.OK),
	)
}

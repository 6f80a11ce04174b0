//go:build linux

package nftfw

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ApplySandbox installs the transparent path's table for p (see
// RenderSandbox) in the network namespace at netns ("" is the caller's
// own), replacing the table of that name if there is one, in one
// transaction. The sandbox's init calls it in its own namespace, where it
// holds CAP_NET_ADMIN, after the loopback is up and the listeners are made,
// and before CMD starts; the namespace needs a route for non-local
// addresses too (netroute.DefaultViaLoopback), or connect() fails before
// any rule sees a packet.
func ApplySandbox(netns string, p SandboxPlan) error {
	t, err := RenderSandbox(p)
	if err != nil {
		return err
	}
	_, err = installRuleTable(netns, t, true, nil, "installing the transparent path's table inet "+t.Name+" in "+where(netns), false)
	return err
}

// ApplySandboxCounters is ApplySandbox that returns the netlink socket it
// installed the table through, in blocking mode and close-on-exec, as a
// socket for ReadSandboxRefusals (what OpenCounterSocket would open).
//
// It is the sandbox init's way, for speed: closing the last descriptor of
// a netfilter netlink socket waits until the kernel has freed every
// committed nftables transaction (nf_tables flushes its destroy work,
// which waits for an RCU grace period: 4-10 ms on a busy two-CPU
// machine). ApplySandbox pays that at once; here the socket lives on in
// the file, and the wait, if any is left, falls to whoever closes it last
// (sandgate's parent, at the end of the run).
func ApplySandboxCounters(netns string, p SandboxPlan) (*os.File, error) {
	t, err := RenderSandbox(p)
	if err != nil {
		return nil, err
	}
	return installRuleTable(netns, t, true, nil, "installing the transparent path's table inet "+t.Name+" in "+where(netns), true)
}

// SandboxRefusals reads the refusal counters of the sandbox's table in the
// network namespace at netns. Entering the namespace needs privileges that
// sandgate's parent does not have in the netns backend; it reads the
// counters through a socket from the sandbox's init instead
// (OpenCounterSocket, ReadSandboxRefusals).
func SandboxRefusals(netns string) (Refusals, error) {
	var r Refusals
	err := eachRule(netns, SandboxTableName, func(_ *nftables.Chain, rule *nftables.Rule, name string) {
		r.add(name, counterOf(rule))
	})
	return r, err
}

// AddRun installs the rules of identity run r (see RenderRun) in the
// identity backend's table in the network namespace at netns ("" is the
// caller's own; the host's for real runs), creating the table and its
// chains when they are missing and replacing rules an earlier run with the
// same id left, in one transaction. Needs CAP_NET_ADMIN.
func AddRun(netns string, r IdentityRun) error {
	nat, filter, err := RenderRun(r)
	if err != nil {
		return err
	}
	t := RenderRunTable()
	t.Chain(NATChainName).Rules = nat
	t.Chain(FilterChainName).Rules = filter
	stale, err := runRules(netns, r.ID)
	if err != nil {
		return err
	}
	_, err = installRuleTable(netns, t, false, stale, "installing the transparent rules of run "+r.ID+" in "+where(netns), false)
	return err
}

// installRuleTable installs t in one transaction: the table, its chains
// and its rules, after deleting the table first (replace) or the rules
// stale; what says what in errors. With keep, it returns the socket it
// used (see ApplySandboxCounters); otherwise the file is nil.
func installRuleTable(netns string, t RuleTable, replace bool, stale []*nftables.Rule, what string, keep bool) (*os.File, error) {
	nt := &nftables.Table{Name: t.Name, Family: nftables.TableFamilyINet}
	chains, rules, err := nftRuleTable(nt, t)
	if err != nil {
		return nil, err
	}
	var nl *netlink.Conn
	c, done, err := dial(netns, nftables.WithSockOptions(func(c *netlink.Conn) error { nl = c; return nil }))
	if err != nil {
		return nil, err
	}
	if err := fillRuleTable(c, nt, chains, rules, replace, stale, what); err != nil {
		done()
		return nil, err
	}
	if !keep {
		done()
		return nil, nil
	}
	fd, err := dupSocket(nl)
	done() // the socket lives on in fd
	if err != nil {
		return nil, fmt.Errorf("%s: keeping the netlink socket: %w", what, err)
	}
	// The library's socket was non-blocking (for Go's poller), and the
	// flag belongs to the socket, not to one descriptor.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: keeping the netlink socket: %w", what, err)
	}
	return os.NewFile(uintptr(fd), "nftables-counters"), nil
}

// dupSocket returns a close-on-exec duplicate of nl's socket.
func dupSocket(nl *netlink.Conn) (int, error) {
	if nl == nil {
		return -1, fmt.Errorf("no netlink connection")
	}
	rc, err := nl.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, derr
}

// fillRuleTable queues installRuleTable's transaction on c and sends it.
func fillRuleTable(c *nftables.Conn, nt *nftables.Table, chains []*nftables.Chain, rules []*nftables.Rule, replace bool, stale []*nftables.Rule, what string) error {
	c.AddTable(nt)
	if replace {
		c.DelTable(nt)
		c.AddTable(nt)
	}
	for _, ch := range chains {
		c.AddChain(ch)
	}
	for _, old := range stale {
		if err := c.DelRule(old); err != nil {
			return fmt.Errorf("%s: removing an old rule: %w", what, err)
		}
	}
	for _, rule := range rules {
		c.AddRule(rule)
	}
	if err := c.Flush(); err != nil {
		return netlinkErr(what, err)
	}
	return nil
}

// RunRefusals reads the refusal counters of run id's rules.
func RunRefusals(netns, id string) (Refusals, error) {
	var r Refusals
	err := eachRule(netns, RunTableName, func(_ *nftables.Chain, rule *nftables.Rule, name string) {
		if rest, ok := strings.CutPrefix(name, RunPrefix(id)); ok {
			r.add(rest, counterOf(rule))
		}
	})
	return r, err
}

// RemoveRun deletes run id's rules in one transaction and returns their
// refusal counts as they were just before. A run without rules is not an
// error.
func RemoveRun(netns, id string) (Refusals, error) {
	var counts Refusals
	var doomed []*nftables.Rule
	err := eachRule(netns, RunTableName, func(_ *nftables.Chain, rule *nftables.Rule, name string) {
		if rest, ok := strings.CutPrefix(name, RunPrefix(id)); ok {
			counts.add(rest, counterOf(rule))
			doomed = append(doomed, rule)
		}
	})
	if err != nil || len(doomed) == 0 {
		return counts, err
	}
	return counts, deleteRules(netns, doomed, "removing the transparent rules of run "+id)
}

// PruneRuns deletes, in one transaction, the rules of every run for which
// alive returns false: what a run that died without RemoveRun left behind.
// (Such rules match nothing once the run's cgroup is gone, since cgroup ids
// are not reused, but they should not pile up.)
func PruneRuns(netns string, alive func(id string) bool) error {
	var doomed []*nftables.Rule
	err := eachRule(netns, RunTableName, func(_ *nftables.Chain, rule *nftables.Rule, name string) {
		rest, ok := strings.CutPrefix(name, "sandgate-run ")
		if !ok {
			return
		}
		id, _, _ := strings.Cut(rest, " ")
		if !alive(id) {
			doomed = append(doomed, rule)
		}
	})
	if err != nil || len(doomed) == 0 {
		return err
	}
	return deleteRules(netns, doomed, "pruning the transparent rules of ended runs")
}

// RemoveRunTable deletes the identity backend's transparent table (for
// `sandgate setup --uninstall`); a table that is not there is not an error.
func RemoveRunTable(netns string) error {
	return deleteTable(netns, RunTableName, "removing the table inet "+RunTableName)
}

// runRules lists the rules of run id in the identity backend's table.
func runRules(netns, id string) ([]*nftables.Rule, error) {
	var out []*nftables.Rule
	err := eachRule(netns, RunTableName, func(_ *nftables.Chain, rule *nftables.Rule, name string) {
		if strings.HasPrefix(name, RunPrefix(id)) {
			out = append(out, rule)
		}
	})
	return out, err
}

// deleteRules deletes rules in one transaction.
func deleteRules(netns string, rules []*nftables.Rule, what string) error {
	c, done, err := dial(netns)
	if err != nil {
		return err
	}
	defer done()
	for _, r := range rules {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := c.Flush(); err != nil {
		return netlinkErr(what, err)
	}
	return nil
}

// eachRule calls fn with every rule of the output chains of table (family
// inet) in the network namespace at netns, and the rule's name; a missing
// table has no rules.
func eachRule(netns, table string, fn func(ch *nftables.Chain, r *nftables.Rule, name string)) error {
	c, done, err := dial(netns)
	if err != nil {
		return err
	}
	defer done()
	return eachRuleOf(c, table, fn)
}

// eachRuleOf is eachRule over the connection c.
func eachRuleOf(c *nftables.Conn, table string, fn func(ch *nftables.Chain, r *nftables.Rule, name string)) error {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return netlinkErr("listing nftables tables", err)
	}
	var t *nftables.Table
	for _, x := range tables {
		if x.Name == table {
			t = x
		}
	}
	if t == nil {
		return nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return netlinkErr("listing the chains of table inet "+table, err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != table || (ch.Name != NATChainName && ch.Name != FilterChainName) {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return netlinkErr("listing the rules of chain "+ch.Name+" of table inet "+table, err)
		}
		for _, r := range rules {
			r.Table, r.Chain = t, ch
			fn(ch, r, readComment(r.UserData))
		}
	}
	return nil
}

// counterOf returns the packets counted by the rule's counter (0 without
// one).
func counterOf(r *nftables.Rule) uint64 {
	for _, e := range r.Exprs {
		if c, ok := e.(*expr.Counter); ok {
			return c.Packets
		}
	}
	return 0
}

// nftRuleTable is t's chains and rules for the nftables library.
func nftRuleTable(nt *nftables.Table, t RuleTable) ([]*nftables.Chain, []*nftables.Rule, error) {
	var chains []*nftables.Chain
	var rules []*nftables.Rule
	for _, rc := range t.Chains {
		ch := nftChain(nt, rc.Chain)
		chains = append(chains, ch)
		for _, r := range rc.Rules {
			exprs := make([]expr.Any, len(r.Exprs))
			for i, e := range r.Exprs {
				x, err := transparentExpr(e)
				if err != nil {
					return nil, nil, fmt.Errorf("rule %s: %w", r.Name, err)
				}
				exprs[i] = x
			}
			rules = append(rules, &nftables.Rule{Table: nt, Chain: ch, Exprs: exprs, UserData: comment(r.Name)})
		}
	}
	return chains, rules, nil
}

// transparentExpr is nftExpr with the expressions only the transparent
// path writes.
func transparentExpr(e Expr) (expr.Any, error) {
	switch e := e.(type) {
	case Counter:
		return &expr.Counter{}, nil
	case Immediate:
		return &expr.Immediate{Register: e.Register, Data: e.Data}, nil
	case Redirect:
		return &expr.Redir{RegisterProtoMin: e.RegisterProtoMin, Flags: e.Flags}, nil
	}
	return nftExpr(e)
}

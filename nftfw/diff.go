package nftfw

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/sandgate/sandgate/ruleplan"
)

// Live is sandgate's table as read back from the kernel.
type Live struct {
	// tableFlags are the table's flags (NFTA_TABLE_FLAGS): a dormant
	// table keeps its chains and rules, but the kernel does not evaluate
	// them.
	tableFlags uint32
	chains     []Chain
	sets       []Set
	// ports holds the elements of the proxy_ports set, sorted, when it
	// exists (an empty set is a non-nil empty slice).
	ports      []uint16
	rules      []liveRule // rules of the output chain, in order
	inputRules []liveRule // rules of the input chain, in order
}

// LiveRule is one rule of a chain as read back from the kernel: its
// handle, its user data (where the comment is) and its expressions.
type LiveRule struct {
	Handle   uint64
	UserData []byte
	Exprs    []Expr
}

// NewLive assembles a Live from what a Backend read: the chains and sets of
// sandgate's table, the elements of the proxy_ports set (nil when the set
// is missing) and the rules of the output and input chains.
func NewLive(chains []Chain, sets []Set, ports []uint16, output, input []LiveRule) *Live {
	l := &Live{chains: chains, sets: sets}
	if ports != nil {
		l.ports = append([]uint16{}, ports...)
		slices.Sort(l.ports)
	}
	for _, r := range output {
		l.rules = append(l.rules, takeApart(r.Exprs, readComment(r.UserData), r.Handle))
	}
	for _, r := range input {
		l.inputRules = append(l.inputRules, takeApart(r.Exprs, readComment(r.UserData), r.Handle))
	}
	return l
}

// Table flags (NFT_TABLE_F_*, linux/netfilter/nf_tables.h).
const (
	tableDormant = 0x1 // the table's chains are not hooked: its rules are not evaluated
	tableOwner   = 0x2 // the table belongs to one netlink socket (harmless here)
	tablePersist = 0x4 // an owned table outlives its owner (harmless here)
)

// WithTableFlags sets the flags of the table (NFTA_TABLE_FLAGS, as the
// kernel lists them) that l was read from, and returns l. NewLive assumes
// none.
func (l *Live) WithTableFlags(flags uint32) *Live {
	l.tableFlags = flags
	return l
}

// Ports returns the elements of the proxy_ports set, sorted (nil when the
// set is missing).
func (l *Live) Ports() []uint16 { return slices.Clone(l.ports) }

// liveRule is one rule of a chain, taken apart.
type liveRule struct {
	name   string // the comment ("" when there is none)
	handle uint64
	uid    uint32
	hasUID bool   // the rule starts with "meta skuid == uid"
	match  string // canonical text of the rest of the rule
}

// takeApart splits a rule into its uid match and a canonical text of the
// rest, so that a rendered rule and one read back from the kernel compare
// equal exactly when they do the same.
func takeApart(exprs []Expr, name string, handle uint64) liveRule {
	r := liveRule{name: name, handle: handle}
	if len(exprs) >= 2 {
		m, ok1 := exprs[0].(Meta)
		c, ok2 := exprs[1].(Cmp)
		if ok1 && ok2 && m.Key == metaSKUID && !m.SourceRegister && c.Op == cmpEq &&
			c.Register == m.Register && len(c.Data) == 4 {
			r.uid, r.hasUID = binary.NativeEndian.Uint32(c.Data), true
			exprs = exprs[2:]
		}
	}
	parts := make([]string, len(exprs))
	for i, e := range exprs {
		parts[i] = e.String()
	}
	r.match = "[" + strings.Join(parts, "] [") + "]"
	return r
}

// Diff compares the live table with what Apply would install for plan and
// offlineUID, and returns each difference in plain words (nil: they agree).
func (l *Live) Diff(plan ruleplan.Plan, offlineUID uint32) ([]string, error) {
	want, err := Render(plan, offlineUID)
	if err != nil {
		return nil, err
	}
	out := l.diffTable()
	chainDiffs, inputThere := l.diffChains(want)
	out = append(out, chainDiffs...)
	out = append(out, l.diffSet(plan)...)
	ruleDiffs, wrongUID := diffOutput(l.rules, want.OutputRules, offlineUID)
	out = append(out, ruleDiffs...)
	if len(out) == 0 {
		out = append(out, diffOrder(l.rules, want.OutputRules)...)
	}
	out = append(out, diffInput(l.inputRules, want.InputRules, inputThere)...)
	// One line instead of one per rule when every rule names the same wrong uid.
	if len(wrongUID) == len(want.OutputRules) && len(wrongUID) > 0 && allSame(wrongUID) {
		out = slices.DeleteFunc(out, func(s string) bool { return strings.Contains(s, "applies to uid") })
		out = append(out, fmt.Sprintf("the rules apply to uid %d, expected uid %d (the offline user)", wrongUID[0], offlineUID))
	}
	return out, nil
}

// diffTable compares the table's flags with none (what Apply installs).
// The owner and persist flags change who may change the table, not what
// its rules do; a flag this version does not know might, so it counts.
func (l *Live) diffTable() []string {
	var out []string
	if l.tableFlags&tableDormant != 0 {
		out = append(out, dormantDiff)
	}
	if other := l.tableFlags &^ (tableDormant | tableOwner | tablePersist); other != 0 {
		out = append(out, fmt.Sprintf("%s has table flags %#x that this version does not know (it installs none)", tableDesc, other))
	}
	return out
}

// dormantDiff is the difference a dormant table makes.
const dormantDiff = "sandgate's table is dormant: the kernel does not evaluate its rules"

// diffChains compares the chains, and says whether the input chain is there.
func (l *Live) diffChains(want Table) (out []string, inputThere bool) {
	var chain, input *Chain
	for i, ch := range l.chains {
		switch ch.Name {
		case ChainName:
			chain = &l.chains[i]
		case InputChainName:
			input = &l.chains[i]
		default:
			out = append(out, fmt.Sprintf("%s has an unexpected chain %q", tableDesc, ch.Name))
		}
	}
	for _, c := range []struct {
		name      string
		got, want *Chain
	}{{ChainName, chain, &want.Output}, {InputChainName, input, &want.Input}} {
		if c.got == nil {
			out = append(out, fmt.Sprintf("chain %s is missing from %s", c.name, tableDesc))
		} else if got := chainSpec(*c.got); got != chainSpec(*c.want) {
			out = append(out, fmt.Sprintf("chain %s is %s, expected %s", c.name, got, chainSpec(*c.want)))
		}
	}
	return out, input != nil
}

// diffSet compares the proxy_ports set with the plan's ports.
func (l *Live) diffSet(plan ruleplan.Plan) []string {
	var out []string
	var set *Set
	for i, s := range l.sets {
		if s.Name == SetName {
			set = &l.sets[i]
		} else {
			out = append(out, fmt.Sprintf("%s has an unexpected set %q", tableDesc, s.Name))
		}
	}
	switch {
	case set == nil:
		out = append(out, fmt.Sprintf("set %s is missing", SetName))
	case set.KeyType != typeInetService || set.KeyBytes != 2 || set.Interval || set.IsMap:
		out = append(out, fmt.Sprintf("set %s is not a plain set of type inet_service", SetName))
	case !slices.Equal(l.ports, plan.ProxyPorts):
		out = append(out, fmt.Sprintf("set %s holds ports %v, expected %v", SetName, l.ports, plan.ProxyPorts))
	}
	return out
}

// diffOutput compares the rules of the output chain, found by name, with
// those Apply installs for offlineUID. It also returns the uids of the
// rules that match on another uid than offlineUID.
func diffOutput(live []liveRule, want []Rule, offlineUID uint32) (out []string, wrongUID []uint32) {
	count := map[string]int{}
	for _, r := range live {
		count[r.name]++
	}
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.Name] = true
		wr := takeApart(w.Exprs, w.Name, 0)
		i := slices.IndexFunc(live, func(r liveRule) bool { return r.name == w.Name })
		if i < 0 {
			out = append(out, fmt.Sprintf("rule %s is missing", w.Name))
			continue
		}
		got := live[i]
		if count[w.Name] > 1 {
			out = append(out, fmt.Sprintf("rule %s appears %d times", w.Name, count[w.Name]))
		}
		if !got.hasUID {
			out = append(out, fmt.Sprintf("rule %s does not match on the offline user's uid", w.Name))
		} else if got.uid != offlineUID {
			wrongUID = append(wrongUID, got.uid)
			out = append(out, fmt.Sprintf("rule %s applies to uid %d, expected uid %d", w.Name, got.uid, offlineUID))
		}
		if got.match != wr.match {
			out = append(out, fmt.Sprintf("rule %s does not match what this version installs (found %s; expected %s)", w.Name, got.match, wr.match))
		}
	}
	return append(out, unexpectedRules(ChainName, live, wanted)...), wrongUID
}

// diffOrder says when the rules of the output chain are all there but in
// another order than Apply installs them.
func diffOrder(live []liveRule, want []Rule) []string {
	var order, wantOrder []string
	for _, r := range live {
		order = append(order, r.name)
	}
	for _, w := range want {
		wantOrder = append(wantOrder, w.Name)
	}
	if slices.Equal(order, wantOrder) {
		return nil
	}
	return []string{fmt.Sprintf("the rules of chain %s are in a different order (%s) than this version installs (%s)", ChainName, strings.Join(order, ", "), strings.Join(wantOrder, ", "))}
}

// diffInput compares the rules of the input chain with those Apply installs
// (which match on no uid). When the chain itself is missing, that has been
// said already.
func diffInput(live []liveRule, want []Rule, chainThere bool) []string {
	if !chainThere {
		return nil
	}
	var out []string
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.Name] = true
		wr := takeApart(w.Exprs, w.Name, 0)
		var got *liveRule
		n := 0
		for i := range live {
			if live[i].name == w.Name {
				if got == nil {
					got = &live[i]
				}
				n++
			}
		}
		switch {
		case got == nil:
			out = append(out, fmt.Sprintf("rule %s is missing from chain %s (without it, any local program listening on a free proxy port could relay the offline user's connections)", w.Name, InputChainName))
			continue
		case n > 1:
			out = append(out, fmt.Sprintf("rule %s appears %d times", w.Name, n))
		}
		if got.hasUID || got.match != wr.match {
			out = append(out, fmt.Sprintf("rule %s does not match what this version installs (found %s; expected %s)", w.Name, got.match, wr.match))
		}
	}
	return append(out, unexpectedRules(InputChainName, live, wanted)...)
}

// unexpectedRules names the rules of chain that Apply does not install.
func unexpectedRules(chain string, live []liveRule, wanted map[string]bool) []string {
	var out []string
	for _, r := range live {
		switch {
		case r.name == "":
			out = append(out, fmt.Sprintf("chain %s has an unexpected rule without a name (handle %d)", chain, r.handle))
		case !wanted[r.name]:
			out = append(out, fmt.Sprintf("chain %s has an unexpected rule %s", chain, r.name))
		}
	}
	return out
}

// chainSpec describes a chain's type, hook, priority and policy.
func chainSpec(c Chain) string {
	s := "type " + c.Type
	if c.Hook != nil {
		s += fmt.Sprintf(" hook %d", *c.Hook)
	} else {
		s += " (no hook)"
	}
	if c.Priority != nil {
		s += fmt.Sprintf(" priority %d", *c.Priority)
	}
	if c.Policy != nil && *c.Policy == policyAcc {
		s += " policy accept"
	} else if c.Policy != nil {
		s += " policy drop"
	}
	return s
}

func allSame(xs []uint32) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}

//go:build linux

package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/ruleplan"
)

// Names of sandgate's nftables objects.
const (
	// TableName is the name of sandgate's table (family inet).
	TableName = "sandgate"
	// ChainName is the name of the base chain on the output hook.
	ChainName = "output"
	// SetName is the name of the set of proxy ports (type inet_service)
	// that the offline user may reach over local TCP.
	SetName = "proxy_ports"
	// InputChainName is the name of the base chain on the input hook.
	InputChainName = "input"
	// InputRuleName is the comment of the input chain's one rule, which
	// refuses connections to the proxy ports unless the listening socket
	// carries ProxySocketMark.
	InputRuleName = "sandgate-proxy-ports-sandgate-only"
)

// ProxySocketMark is ruleplan.ProxySocketMark.
//
// Deprecated: use ruleplan.ProxySocketMark.
const ProxySocketMark = ruleplan.ProxySocketMark

// MaxPorts is the most proxy ports a plan may have (the set's elements go
// to the kernel in one netlink message): ruleplan.MaxPorts.
const MaxPorts = ruleplan.MaxPorts

// tableDesc names the table in messages.
const tableDesc = "the nftables table inet " + TableName

// beforeFlush, when set (by tests), is called with the connection and the
// table just before Apply sends its batch, so a test can make it fail.
var beforeFlush func(c *nftables.Conn, set *nftables.Set)

// Apply replaces sandgate's table in the network namespace at netns (a path
// such as /run/netns/NAME or /proc/PID/ns/net; "" is the caller's own) with
// the rules of plan, applied to packets from sockets owned by offlineUID.
//
// The old table is deleted and the new one created in one nftables
// transaction: the kernel applies all of it or none of it, and packets see
// either the old rules or the new ones, never an empty table in between. If
// the change fails, the rules that were installed before are still there.
// Needs CAP_NET_ADMIN in the namespace.
func Apply(netns string, plan ruleplan.Plan, offlineUID uint32) error {
	want, err := render(plan, offlineUID)
	if err != nil {
		return err
	}
	c, done, err := dial(netns)
	if err != nil {
		return err
	}
	defer done()

	t := want.table
	// "add table; delete table; add table ...": the first add makes the
	// delete valid whether or not the table exists, all in one batch.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	c.AddChain(want.chain)
	if err := c.AddSet(want.set, want.elems); err != nil {
		return fmt.Errorf("preparing set %s: %w", SetName, err)
	}
	for _, r := range want.rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: want.chain, Exprs: r.exprs, UserData: comment(r.name)})
	}
	c.AddChain(want.input)
	for _, r := range want.inputRules {
		c.AddRule(&nftables.Rule{Table: t, Chain: want.input, Exprs: r.exprs, UserData: comment(r.name)})
	}
	if beforeFlush != nil {
		beforeFlush(c, want.set)
	}
	if err := c.Flush(); err != nil {
		return netlinkErr("installing "+tableDesc+" (the transaction was refused, so the rules installed before are unchanged)", err)
	}
	return nil
}

// Remove deletes sandgate's table from the network namespace at netns (""
// is the caller's own). Removing a table that is not there is not an error.
func Remove(netns string) error {
	c, done, err := dial(netns)
	if err != nil {
		return err
	}
	defer done()
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return netlinkErr("removing "+tableDesc, err)
	}
	return nil
}

// Verify compares sandgate's table in the network namespace at netns with
// what Apply(netns, plan, offlineUID) would install and returns each
// difference in plain words; nil means they agree. The error is for failing
// to read the rules at all (for example without CAP_NET_ADMIN).
func Verify(netns string, plan ruleplan.Plan, offlineUID uint32) ([]string, error) {
	live, err := Read(netns)
	if err != nil {
		return nil, err
	}
	if live == nil {
		return []string{tableDesc + " is missing"}, nil
	}
	return live.Diff(plan, offlineUID)
}

// Live is sandgate's table as read back from the kernel.
type Live struct {
	chains []*nftables.Chain
	sets   []*nftables.Set
	// ports holds the elements of the proxy_ports set, when it exists.
	ports      []uint16
	rules      []liveRule // rules of the output chain, in order
	inputRules []liveRule // rules of the input chain, in order
}

// liveRule is one rule of the output chain, taken apart.
type liveRule struct {
	name   string // the comment ("" when there is none)
	handle uint64
	uid    uint32
	hasUID bool   // the rule starts with "meta skuid == uid"
	match  string // canonical text of the rest of the rule
}

// Read returns sandgate's table in the network namespace at netns ("" is
// the caller's own), or nil when there is none. Reading needs CAP_NET_ADMIN.
func Read(netns string) (*Live, error) {
	c, done, err := dial(netns)
	if err != nil {
		return nil, err
	}
	defer done()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, netlinkErr("listing nftables tables", err)
	}
	var t *nftables.Table
	for _, x := range tables {
		if x.Name == TableName {
			t = x
		}
	}
	if t == nil {
		return nil, nil
	}
	live := &Live{}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, netlinkErr("listing the chains of "+tableDesc, err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == TableName {
			live.chains = append(live.chains, ch)
		}
	}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, netlinkErr("listing the sets of "+tableDesc, err)
	}
	live.sets = sets
	for _, s := range sets {
		if s.Name != SetName || s.KeyType.Bytes != 2 {
			continue
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return nil, netlinkErr("reading set "+SetName, err)
		}
		for _, e := range elems {
			if len(e.Key) == 2 && !e.IntervalEnd {
				live.ports = append(live.ports, binary.BigEndian.Uint16(e.Key))
			}
		}
		slices.Sort(live.ports)
		if live.ports == nil {
			live.ports = []uint16{}
		}
	}
	for _, ch := range live.chains {
		var dst *[]liveRule
		switch ch.Name {
		case ChainName:
			dst = &live.rules
		case InputChainName:
			dst = &live.inputRules
		default:
			continue
		}
		rules, err := readRules(netns, ch.Name)
		if err != nil {
			return nil, netlinkErr("reading the rules of chain "+ch.Name, err)
		}
		for _, r := range rules {
			*dst = append(*dst, takeApart(r.exprs, readComment(r.userData), r.handle))
		}
	}
	return live, nil
}

// Diff compares the live table with what Apply would install for plan and
// offlineUID, and returns each difference in plain words (nil: they agree).
func (l *Live) Diff(plan ruleplan.Plan, offlineUID uint32) ([]string, error) {
	want, err := render(plan, offlineUID)
	if err != nil {
		return nil, err
	}
	var out []string

	// The chains.
	var chain, input *nftables.Chain
	for _, ch := range l.chains {
		switch ch.Name {
		case ChainName:
			chain = ch
		case InputChainName:
			input = ch
		default:
			out = append(out, fmt.Sprintf("%s has an unexpected chain %q", tableDesc, ch.Name))
		}
	}
	for _, c := range []struct {
		name      string
		got, want *nftables.Chain
	}{{ChainName, chain, want.chain}, {InputChainName, input, want.input}} {
		if c.got == nil {
			out = append(out, fmt.Sprintf("chain %s is missing from %s", c.name, tableDesc))
		} else if got := chainSpec(c.got); got != chainSpec(c.want) {
			out = append(out, fmt.Sprintf("chain %s is %s, expected %s", c.name, got, chainSpec(c.want)))
		}
	}

	// The set.
	var set *nftables.Set
	for _, s := range l.sets {
		if s.Name == SetName {
			set = s
		} else {
			out = append(out, fmt.Sprintf("%s has an unexpected set %q", tableDesc, s.Name))
		}
	}
	switch {
	case set == nil:
		out = append(out, fmt.Sprintf("set %s is missing", SetName))
	case set.KeyType.GetNFTMagic() != nftables.TypeInetService.GetNFTMagic() || set.KeyType.Bytes != 2 || set.Interval || set.IsMap:
		out = append(out, fmt.Sprintf("set %s is not a plain set of type inet_service", SetName))
	case !slices.Equal(l.ports, plan.ProxyPorts):
		out = append(out, fmt.Sprintf("set %s holds ports %v, expected %v", SetName, l.ports, plan.ProxyPorts))
	}

	// The rules, found by name.
	count := map[string]int{}
	for _, r := range l.rules {
		count[r.name]++
	}
	wanted := map[string]bool{}
	var wrongUID []uint32
	for _, w := range want.rules {
		wanted[w.name] = true
		wr := takeApart(w.exprs, w.name, 0)
		var got *liveRule
		for i := range l.rules {
			if l.rules[i].name == w.name {
				got = &l.rules[i]
				break
			}
		}
		switch {
		case got == nil:
			out = append(out, fmt.Sprintf("rule %s is missing", w.name))
			continue
		case count[w.name] > 1:
			out = append(out, fmt.Sprintf("rule %s appears %d times", w.name, count[w.name]))
		}
		if !got.hasUID {
			out = append(out, fmt.Sprintf("rule %s does not match on the offline user's uid", w.name))
		} else if got.uid != offlineUID {
			wrongUID = append(wrongUID, got.uid)
			out = append(out, fmt.Sprintf("rule %s applies to uid %d, expected uid %d", w.name, got.uid, offlineUID))
		}
		if got.match != wr.match {
			out = append(out, fmt.Sprintf("rule %s does not match what this version installs (found %s; expected %s)", w.name, got.match, wr.match))
		}
	}
	for _, r := range l.rules {
		switch {
		case r.name == "":
			out = append(out, fmt.Sprintf("chain %s has an unexpected rule without a name (handle %d)", ChainName, r.handle))
		case !wanted[r.name]:
			out = append(out, fmt.Sprintf("chain %s has an unexpected rule %s", ChainName, r.name))
		}
	}
	if len(out) == 0 {
		var order []string
		for _, r := range l.rules {
			order = append(order, r.name)
		}
		var wantOrder []string
		for _, w := range want.rules {
			wantOrder = append(wantOrder, w.name)
		}
		if !slices.Equal(order, wantOrder) {
			out = append(out, fmt.Sprintf("the rules of chain %s are in a different order (%s) than this version installs (%s)", ChainName, strings.Join(order, ", "), strings.Join(wantOrder, ", ")))
		}
	}
	out = append(out, diffInput(l.inputRules, want.inputRules, input != nil)...)
	// One line instead of one per rule when every rule names the same wrong uid.
	if len(wrongUID) == len(want.rules) && len(wrongUID) > 0 && allSame(wrongUID) {
		out = slices.DeleteFunc(out, func(s string) bool { return strings.Contains(s, "applies to uid") })
		out = append(out, fmt.Sprintf("the rules apply to uid %d, expected uid %d (the offline user)", wrongUID[0], offlineUID))
	}
	return out, nil
}

// diffInput compares the rules of the input chain with those Apply installs
// (which match on no uid). When the chain itself is missing, that has been
// said already.
func diffInput(live []liveRule, want []namedRule, chainThere bool) []string {
	if !chainThere {
		return nil
	}
	var out []string
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.name] = true
		wr := takeApart(w.exprs, w.name, 0)
		var got *liveRule
		n := 0
		for i := range live {
			if live[i].name == w.name {
				if got == nil {
					got = &live[i]
				}
				n++
			}
		}
		switch {
		case got == nil:
			out = append(out, fmt.Sprintf("rule %s is missing from chain %s (without it, any local program listening on a free proxy port could relay the offline user's connections)", w.name, InputChainName))
			continue
		case n > 1:
			out = append(out, fmt.Sprintf("rule %s appears %d times", w.name, n))
		}
		if got.hasUID || got.match != wr.match {
			out = append(out, fmt.Sprintf("rule %s does not match what this version installs (found %s; expected %s)", w.name, got.match, wr.match))
		}
	}
	for _, r := range live {
		switch {
		case r.name == "":
			out = append(out, fmt.Sprintf("chain %s has an unexpected rule without a name (handle %d)", InputChainName, r.handle))
		case !wanted[r.name]:
			out = append(out, fmt.Sprintf("chain %s has an unexpected rule %s", InputChainName, r.name))
		}
	}
	return out
}

// Ports returns the elements of the proxy_ports set, sorted (nil when the
// set is missing).
func (l *Live) Ports() []uint16 { return slices.Clone(l.ports) }

// rendered is a plan rendered as nftables objects.
type rendered struct {
	table      *nftables.Table
	chain      *nftables.Chain // output
	set        *nftables.Set
	elems      []nftables.SetElement
	rules      []namedRule // of the output chain
	input      *nftables.Chain
	inputRules []namedRule
}

type namedRule struct {
	name  string
	exprs []expr.Any
}

// render turns plan into nftables objects for offlineUID. It refuses plans
// it cannot render faithfully.
func render(plan ruleplan.Plan, offlineUID uint32) (rendered, error) {
	ports, err := ruleplan.NormalizePorts(plan.ProxyPorts)
	if err != nil {
		return rendered{}, err
	}
	if !slices.Equal(ports, plan.ProxyPorts) {
		return rendered{}, fmt.Errorf("the plan's proxy ports %v are not sorted and de-duplicated", plan.ProxyPorts)
	}
	if len(ports) > MaxPorts {
		return rendered{}, fmt.Errorf("%d proxy ports are too many: at most %d", len(ports), MaxPorts)
	}
	if offlineUID == 0 {
		return rendered{}, errors.New("refusing to apply the offline user's rules to uid 0 (root)")
	}
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	accept := nftables.ChainPolicyAccept
	r := rendered{
		table: t,
		chain: &nftables.Chain{
			Name:     ChainName,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookOutput,
			Priority: nftables.ChainPriorityFilter,
			Policy:   &accept,
		},
		set: &nftables.Set{Table: t, Name: SetName, KeyType: nftables.TypeInetService},
		input: &nftables.Chain{
			Name:     InputChainName,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookInput,
			Priority: nftables.ChainPriorityFilter,
			Policy:   &accept,
		},
		inputRules: []namedRule{{name: InputRuleName, exprs: proxyPortsGuard()}},
	}
	for _, p := range ports {
		r.elems = append(r.elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
	}
	seen := map[string]bool{}
	for _, rule := range plan.Rules {
		if seen[rule.Name] {
			return rendered{}, fmt.Errorf("the plan names rule %s twice", rule.Name)
		}
		seen[rule.Name] = true
		exprs, err := renderRule(rule, ports, offlineUID)
		if err != nil {
			return rendered{}, fmt.Errorf("rule %s: %w", rule.Name, err)
		}
		r.rules = append(r.rules, namedRule{name: rule.Name, exprs: exprs})
	}
	return r, nil
}

// Registers: everything here fits in the first 16-byte register.
const reg = 1

// proxyPortsGuard is the input chain's rule:
//
//	meta l4proto tcp tcp flags & (syn | ack) == syn tcp dport @proxy_ports socket mark != ProxySocketMark reject with tcp reset
//
// A connection attempt (SYN without ACK) to a proxy port is answered with a
// reset when the listening socket that would take it does not carry
// sandgate's mark. When nothing listens there the socket expression finds no
// socket, the rule does not match, and the kernel resets the connection as
// usual. It applies to every source, not only local ones: the ports are
// reserved for sandgate's proxy, which listens on 127.0.0.1 only, so a
// connection from anywhere to another listener on them is never sandgate's
// business to allow, and matching on every source leaves no question of
// which packets count as local (VRFs, containers, addresses moved between
// interfaces).
func proxyPortsGuard() []expr.Any {
	const tcpFlagsSYN, tcpFlagsACK = 0x02, 0x10
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{tcpFlagsSYN | tcpFlagsACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{tcpFlagsSYN}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg, SetName: SetName},
		&expr.Socket{Key: expr.SocketKeyMark, Register: reg},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: binaryutil.NativeEndian.PutUint32(ruleplan.ProxySocketMark)},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
	}
}

// renderRule turns one plan rule into expressions:
//
//	meta skuid == UID  [protocol match]  fib daddr type [!=] local  [th dport != @proxy_ports]  verdict
func renderRule(rule ruleplan.Rule, ports []uint16, uid uint32) ([]expr.Any, error) {
	if rule.Identity != ruleplan.Offline {
		return nil, fmt.Errorf("only the offline identity has rules, not %q", rule.Identity)
	}
	if rule.Direction != "out" {
		return nil, fmt.Errorf("only outbound rules can be rendered, not %q", rule.Direction)
	}
	if len(rule.Name) > 200 {
		return nil, errors.New("the rule name is too long for a comment")
	}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeySKUID, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.NativeEndian.PutUint32(uid)},
	}
	l4 := func(op expr.CmpOp, proto byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
			&expr.Cmp{Op: op, Register: reg, Data: []byte{proto}},
		}
	}
	switch rule.Protocol {
	case ruleplan.Any:
	case ruleplan.TCP:
		ex = append(ex, l4(expr.CmpOpEq, unix.IPPROTO_TCP)...)
	case ruleplan.UDP:
		ex = append(ex, l4(expr.CmpOpEq, unix.IPPROTO_UDP)...)
	case ruleplan.Other:
		ex = append(ex, l4(expr.CmpOpNeq, unix.IPPROTO_TCP)...)
		ex = append(ex, l4(expr.CmpOpNeq, unix.IPPROTO_UDP)...)
	default:
		return nil, fmt.Errorf("unknown protocol %q", rule.Protocol)
	}
	var op expr.CmpOp
	switch rule.Remote {
	case ruleplan.Local:
		op = expr.CmpOpEq
	case ruleplan.NonLocal:
		op = expr.CmpOpNeq
	default:
		return nil, fmt.Errorf("unknown destination class %q", rule.Remote)
	}
	// The destination's address type, from the routing tables: "local"
	// covers loopback and every address of this host, whichever interface
	// it is on.
	ex = append(ex,
		&expr.Fib{Register: reg, ResultADDRTYPE: true, FlagDADDR: true},
		&expr.Cmp{Op: op, Register: reg, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	)
	if rule.Ports != nil {
		if rule.Protocol != ruleplan.TCP && rule.Protocol != ruleplan.UDP {
			return nil, errors.New("ports given for a protocol without ports")
		}
		// The plan writes "every port except the proxy ports" as ranges;
		// nftables says it directly with the set.
		if !slices.Equal(rule.Ports, ruleplan.Complement(ports)) {
			return nil, fmt.Errorf("ports %s are not the complement of the proxy ports", ruleplan.FormatRanges(rule.Ports))
		}
		ex = append(ex,
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: reg, SetName: SetName, Invert: true},
		)
	}
	switch {
	case rule.Reject && rule.Protocol == ruleplan.TCP:
		ex = append(ex, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	case rule.Reject:
		ex = append(ex, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
	default:
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictDrop})
	}
	return ex, nil
}

// takeApart splits a rule into its uid match and a canonical text of the
// rest, so that a rendered rule and one read back from the kernel compare
// equal exactly when they do the same.
func takeApart(exprs []expr.Any, name string, handle uint64) liveRule {
	r := liveRule{name: name, handle: handle}
	if len(exprs) >= 2 {
		m, ok1 := exprs[0].(*expr.Meta)
		c, ok2 := exprs[1].(*expr.Cmp)
		if ok1 && ok2 && m.Key == expr.MetaKeySKUID && !m.SourceRegister && c.Op == expr.CmpOpEq &&
			c.Register == m.Register && len(c.Data) == 4 {
			r.uid, r.hasUID = binaryutil.NativeEndian.Uint32(c.Data), true
			exprs = exprs[2:]
		}
	}
	parts := make([]string, len(exprs))
	for i, e := range exprs {
		parts[i] = canonical(e)
	}
	r.match = "[" + strings.Join(parts, "] [") + "]"
	return r
}

// canonical is a stable text for one expression (fields the kernel does not
// echo back, such as a lookup's set id, are left out).
func canonical(e expr.Any) string {
	switch e := e.(type) {
	case *expr.Meta:
		return fmt.Sprintf("meta key=%d reg=%d src=%v", e.Key, e.Register, e.SourceRegister)
	case *expr.Cmp:
		return fmt.Sprintf("cmp op=%d reg=%d data=%x", e.Op, e.Register, e.Data)
	case *expr.Fib:
		return fmt.Sprintf("fib %+v", *e)
	case *expr.Payload:
		return fmt.Sprintf("payload op=%d base=%d off=%d len=%d dreg=%d sreg=%d", e.OperationType, e.Base, e.Offset, e.Len, e.DestRegister, e.SourceRegister)
	case *expr.Lookup:
		return fmt.Sprintf("lookup set=%s sreg=%d inv=%v dreg=%v/%d", e.SetName, e.SourceRegister, e.Invert, e.IsDestRegSet, e.DestRegister)
	case *expr.Verdict:
		return fmt.Sprintf("verdict %d %s", e.Kind, e.Chain)
	case *expr.Reject:
		return fmt.Sprintf("reject type=%d code=%d", e.Type, e.Code)
	case *expr.Bitwise:
		return fmt.Sprintf("bitwise sreg=%d dreg=%d len=%d mask=%x xor=%x", e.SourceRegister, e.DestRegister, e.Len, e.Mask, e.Xor)
	case *expr.Socket:
		return fmt.Sprintf("socket key=%d level=%d reg=%d", e.Key, e.Level, e.Register)
	case *opaqueExpr:
		return fmt.Sprintf("%s %x", e.name, e.data)
	default:
		return fmt.Sprintf("%T %+v", e, e)
	}
}

func chainSpec(c *nftables.Chain) string {
	s := "type " + string(c.Type)
	if c.Hooknum != nil {
		s += fmt.Sprintf(" hook %d", *c.Hooknum)
	} else {
		s += " (no hook)"
	}
	if c.Priority != nil {
		s += fmt.Sprintf(" priority %d", int32(*c.Priority))
	}
	if c.Policy != nil && *c.Policy == nftables.ChainPolicyAccept {
		s += " policy accept"
	} else if c.Policy != nil {
		s += " policy drop"
	}
	return s
}

// comment encodes a rule comment as the nft tool does (NFTNL_UDATA_RULE_COMMENT).
func comment(name string) []byte {
	return append([]byte{0, byte(len(name) + 1)}, append([]byte(name), 0)...)
}

// readComment decodes a rule comment, tolerating malformed user data.
func readComment(ud []byte) string {
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return ""
		}
		if typ == 0 {
			return strings.TrimRight(string(ud[2:2+n]), "\x00")
		}
		ud = ud[2+n:]
	}
	return ""
}

// dial opens a netlink connection to nftables in the namespace at netns.
func dial(netns string) (*nftables.Conn, func(), error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	var f *os.File
	if netns != "" {
		var err error
		f, err = os.Open(netns)
		if err != nil {
			return nil, nil, fmt.Errorf("opening network namespace: %w", err)
		}
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	c, err := nftables.New(opts...)
	if f != nil {
		f.Close() // the socket, once made, stays in the namespace
	}
	if err != nil {
		where := "this network namespace"
		if netns != "" {
			where = "network namespace " + netns
		}
		return nil, nil, netlinkErr("connecting to nftables in "+where, err)
	}
	return c, func() { c.CloseLasting() }, nil
}

// netlinkErr wraps err with what was being done, and says what a permission
// error means.
func netlinkErr(what string, err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%s: %w (changing or reading nftables rules needs root, or CAP_NET_ADMIN)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func allSame(xs []uint32) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}

package nftfw

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// ruleNames lists the names of rules.
func ruleNames(rules []Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Name)
	}
	return out
}

// text is the canonical text of a rule's expressions.
func text(r Rule) string {
	var parts []string
	for _, e := range r.Exprs {
		parts = append(parts, e.String())
	}
	return strings.Join(parts, " | ")
}

// redirectPort returns the port a rule redirects to, or 0.
func redirectPort(r Rule) uint16 {
	for i, e := range r.Exprs {
		if _, ok := e.(Redirect); ok && i > 0 {
			if im, ok := r.Exprs[i-1].(Immediate); ok && len(im.Data) == 2 {
				return binary.BigEndian.Uint16(im.Data)
			}
		}
	}
	return 0
}

func TestRenderSandbox(t *testing.T) {
	if _, err := RenderSandbox(SandboxPlan{}); err == nil {
		t.Error("RenderSandbox without a port succeeded")
	}
	tb, err := RenderSandbox(SandboxPlan{TCPPort: 40001, DNSPort: 40002})
	if err != nil {
		t.Fatal(err)
	}
	nat, filter := tb.Chain(NATChainName), tb.Chain(FilterChainName)
	if tb.Name != SandboxTableName || nat == nil || filter == nil || len(tb.Chains) != 2 || tb.Chain("other") != nil {
		t.Fatalf("table %+v", tb)
	}
	if nat.Type != "nat" || *nat.Hook != hookOutput || *nat.Priority != priorityDstNAT || *nat.Policy != policyAcc {
		t.Errorf("nat chain %+v", nat.Chain)
	}
	if filter.Type != "filter" || *filter.Hook != hookOutput || *filter.Priority != 0 || *filter.Policy != policyAcc {
		t.Errorf("filter chain %+v", filter.Chain)
	}
	if got, want := ruleNames(nat.Rules), []string{ruleDNSUDP, ruleDNSTCP, ruleTCPRedirect}; !slices.Equal(got, want) {
		t.Errorf("nat rules %q, want %q", got, want)
	}
	for i, want := range []uint16{40002, 40002, 40001} {
		if got := redirectPort(nat.Rules[i]); got != want {
			t.Errorf("rule %s redirects to %d, want %d", nat.Rules[i].Name, got, want)
		}
	}
	// The TCP redirect and every refusal apply to non-local destinations
	// only; the DNS redirects to any.
	nonLocalText := Fib{Register: reg, ResultADDRTYPE: true, FlagDADDR: true}.String()
	for _, r := range append(slices.Clone(nat.Rules[2:]), filter.Rules[1:]...) {
		if !strings.Contains(text(r), nonLocalText) {
			t.Errorf("rule %s does not test for a non-local destination: %s", r.Name, text(r))
		}
	}
	if strings.Contains(text(nat.Rules[0]), nonLocalText) {
		t.Errorf("the DNS redirect is limited to non-local destinations: %s", text(nat.Rules[0]))
	}
	if got, want := ruleNames(filter.Rules), []string{ruleRedirected, RuleTCPUnredirected, RuleUDPRefused, RuleOtherRefused}; !slices.Equal(got, want) {
		t.Errorf("filter rules %q, want %q", got, want)
	}
	if last := filter.Rules[0].Exprs[len(filter.Rules[0].Exprs)-1]; last != (Verdict{Kind: verdictAccept}) || !strings.HasPrefix(text(filter.Rules[0]), Ct{Key: ctKeyStatus, Register: reg}.String()) {
		t.Errorf("the first filter rule does not accept redirected connections: %s", text(filter.Rules[0]))
	}
	for _, r := range filter.Rules[1:] {
		if !slices.ContainsFunc(r.Exprs, func(e Expr) bool { _, ok := e.(Counter); return ok }) {
			t.Errorf("rule %s counts nothing", r.Name)
		}
	}
	if last := filter.Rules[2].Exprs[len(filter.Rules[2].Exprs)-1]; last != (Reject{Type: rejectICMPXUnreach, Code: icmpxPortUnreach}) {
		t.Errorf("UDP is refused with %v, want an ICMP port unreachable", last)
	}

	noDNS, err := RenderSandbox(SandboxPlan{TCPPort: 40001})
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleNames(noDNS.Chain(NATChainName).Rules); !slices.Equal(got, []string{ruleTCPRedirect}) {
		t.Errorf("without a DNS port, nat rules %q", got)
	}
}

func TestRenderRun(t *testing.T) {
	good := IdentityRun{ID: "run-1a", UID: offUID, CgroupID: 0x1122334455, CgroupLevel: 2, TCPPort: 47102, DNSPort: 47103}
	nat, filter, err := RenderRun(good)
	if err != nil {
		t.Fatal(err)
	}
	prefix := RunPrefix(good.ID)
	if got, want := ruleNames(nat), []string{prefix + ruleDNSUDP, prefix + ruleDNSTCP, prefix + ruleTCPRedirect}; !slices.Equal(got, want) {
		t.Errorf("nat rules %q, want %q", got, want)
	}
	if got, want := ruleNames(filter), []string{prefix + RuleUDPRefused, prefix + RuleOtherRefused}; !slices.Equal(got, want) {
		t.Errorf("filter rules %q, want %q", got, want)
	}
	if redirectPort(nat[2]) != 47102 || redirectPort(nat[0]) != 47103 {
		t.Errorf("redirects to %d and %d", redirectPort(nat[2]), redirectPort(nat[0]))
	}
	// Every rule is scoped to the offline user and the run's cgroup.
	uid := Cmp{Op: cmpEq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, offUID)}.String()
	cg := Socket{Key: socketCgroupV2, Level: 2, Register: reg}.String() + " | " +
		Cmp{Op: cmpEq, Register: reg, Data: binary.NativeEndian.AppendUint64(nil, 0x1122334455)}.String()
	for _, r := range append(slices.Clone(nat), filter...) {
		if tx := text(r); !strings.HasPrefix(tx, Meta{Key: metaSKUID, Register: reg}.String()+" | "+uid+" | "+cg) {
			t.Errorf("rule %s is not scoped to the run: %s", r.Name, tx)
		}
		if len(r.Name) > 200 {
			t.Errorf("rule name %q is too long for a comment", r.Name)
		}
	}
	tb := RenderRunTable()
	if tb.Name != RunTableName || *tb.Chain(FilterChainName).Priority >= 0 || *tb.Chain(NATChainName).Priority != priorityDstNAT {
		t.Errorf("run table %+v: the filter chain must run before setup's", tb)
	}

	for name, mutate := range map[string]func(*IdentityRun){
		"root":          func(r *IdentityRun) { r.UID = 0 },
		"no cgroup":     func(r *IdentityRun) { r.CgroupID = 0 },
		"root cgroup":   func(r *IdentityRun) { r.CgroupLevel = 0 },
		"no port":       func(r *IdentityRun) { r.TCPPort = 0 },
		"empty id":      func(r *IdentityRun) { r.ID = "" },
		"space in id":   func(r *IdentityRun) { r.ID = "a b" },
		"long id":       func(r *IdentityRun) { r.ID = strings.Repeat("x", 65) },
		"non-ASCII id":  func(r *IdentityRun) { r.ID = "rün" },
		"slash in id":   func(r *IdentityRun) { r.ID = "a/b" },
		"newline in id": func(r *IdentityRun) { r.ID = "a\nb" },
	} {
		r := good
		mutate(&r)
		if _, _, err := RenderRun(r); err == nil {
			t.Errorf("%s: RenderRun(%+v) succeeded", name, r)
		}
	}
	noDNS := good
	noDNS.DNSPort = 0
	if nat, _, _ := RenderRun(noDNS); len(nat) != 1 {
		t.Errorf("without a DNS port: %d nat rules", len(nat))
	}
}

func TestRefusals(t *testing.T) {
	var r Refusals
	r.add(RuleTCPUnredirected, 1)
	r.add(RuleUDPRefused, 2)
	r.add(RuleOtherRefused, 4)
	r.add(ruleTCPRedirect, 8)
	if r != (Refusals{TCP: 1, UDP: 2, Other: 4}) || r.Total() != 7 {
		t.Errorf("refusals %+v total %d", r, r.Total())
	}
}

//go:build linux

package nftfw

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// This file translates between this package's own types and those of
// github.com/google/nftables, which speaks netlink.

// nftChain is c as a chain of table t.
func nftChain(t *nftables.Table, c Chain) *nftables.Chain {
	ch := &nftables.Chain{Name: c.Name, Table: t, Type: nftables.ChainType(c.Type)}
	if c.Hook != nil {
		h := nftables.ChainHook(*c.Hook)
		ch.Hooknum = &h
	}
	if c.Priority != nil {
		p := nftables.ChainPriority(*c.Priority)
		ch.Priority = &p
	}
	if c.Policy != nil {
		p := nftables.ChainPolicy(*c.Policy)
		ch.Policy = &p
	}
	return ch
}

// ownChain is the chain c as read back.
func ownChain(c *nftables.Chain) Chain {
	ch := Chain{Name: c.Name, Type: string(c.Type)}
	if c.Hooknum != nil {
		h := uint32(*c.Hooknum)
		ch.Hook = &h
	}
	if c.Priority != nil {
		p := int32(*c.Priority)
		ch.Priority = &p
	}
	if c.Policy != nil {
		p := uint32(*c.Policy)
		ch.Policy = &p
	}
	return ch
}

// nftRules is rules as rules of chain ch in table t, each with its name as
// its comment.
func nftRules(t *nftables.Table, ch *nftables.Chain, rules []Rule) ([]*nftables.Rule, error) {
	out := make([]*nftables.Rule, len(rules))
	for i, r := range rules {
		exprs := make([]expr.Any, len(r.Exprs))
		for j, e := range r.Exprs {
			x, err := nftExpr(e)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.Name, err)
			}
			exprs[j] = x
		}
		out[i] = &nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: comment(r.Name)}
	}
	return out, nil
}

// nftExpr is e for the nftables library. Only the kinds Render makes can be
// installed.
func nftExpr(e Expr) (expr.Any, error) {
	switch e := e.(type) {
	case Meta:
		return &expr.Meta{Key: expr.MetaKey(e.Key), Register: e.Register, SourceRegister: e.SourceRegister}, nil
	case Cmp:
		return &expr.Cmp{Op: expr.CmpOp(e.Op), Register: e.Register, Data: e.Data}, nil
	case Fib:
		f := expr.Fib(e)
		return &f, nil
	case Payload:
		return &expr.Payload{OperationType: expr.PayloadOperationType(e.OperationType), DestRegister: e.DestRegister,
			SourceRegister: e.SourceRegister, Base: expr.PayloadBase(e.Base), Offset: e.Offset, Len: e.Len}, nil
	case Bitwise:
		return &expr.Bitwise{SourceRegister: e.SourceRegister, DestRegister: e.DestRegister, Len: e.Len, Mask: e.Mask, Xor: e.Xor}, nil
	case Lookup:
		return &expr.Lookup{SetName: e.SetName, SourceRegister: e.SourceRegister, Invert: e.Invert,
			IsDestRegSet: e.IsDestRegSet, DestRegister: e.DestRegister}, nil
	case Socket:
		return &expr.Socket{Key: expr.SocketKey(e.Key), Level: e.Level, Register: e.Register}, nil
	case Reject:
		return &expr.Reject{Type: e.Type, Code: e.Code}, nil
	case Verdict:
		return &expr.Verdict{Kind: expr.VerdictKind(e.Kind), Chain: e.Chain}, nil
	case Ct:
		return &expr.Ct{Key: expr.CtKey(e.Key), Register: e.Register}, nil
	}
	return nil, fmt.Errorf("cannot install the expression %s", e)
}

// ownExpr is an expression read back, in this package's terms.
func ownExpr(e expr.Any) Expr {
	switch e := e.(type) {
	case *expr.Meta:
		return Meta{Key: uint32(e.Key), Register: e.Register, SourceRegister: e.SourceRegister}
	case *expr.Cmp:
		return Cmp{Op: uint32(e.Op), Register: e.Register, Data: e.Data}
	case *expr.Fib:
		return Fib(*e)
	case *expr.Payload:
		return Payload{OperationType: uint32(e.OperationType), DestRegister: e.DestRegister, SourceRegister: e.SourceRegister,
			Base: uint32(e.Base), Offset: e.Offset, Len: e.Len}
	case *expr.Bitwise:
		return Bitwise{SourceRegister: e.SourceRegister, DestRegister: e.DestRegister, Len: e.Len, Mask: e.Mask, Xor: e.Xor}
	case *expr.Lookup:
		return Lookup{SetName: e.SetName, SourceRegister: e.SourceRegister, Invert: e.Invert, IsDestRegSet: e.IsDestRegSet, DestRegister: e.DestRegister}
	case *expr.Socket:
		return Socket{Key: uint32(e.Key), Level: e.Level, Register: e.Register}
	case *expr.Reject:
		return Reject{Type: e.Type, Code: e.Code}
	case *expr.Verdict:
		return Verdict{Kind: int64(e.Kind), Chain: e.Chain}
	case *expr.Ct:
		if !e.SourceRegister && e.Direction == 0 { // a "ct set" or a directed load is not what sandgate writes
			return Ct{Key: uint32(e.Key), Register: e.Register}
		}
	}
	return Foreign{Text: fmt.Sprintf("%T %+v", e, e)}
}

//go:build linux

package nftfw

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// readRules lists the rules of chain in sandgate's table in the network
// namespace at netns ("" is the caller's own). It talks netlink itself
// rather than through nftables.Conn.GetRules because that leaves out, without
// a word, the expressions it cannot decode — among them "socket", which the
// input chain's rule relies on — and a comparison that cannot see an
// expression cannot tell a rule that has it from one that does not.
func readRules(netns, chain string) ([]LiveRule, error) {
	cfg := &netlink.Config{}
	if netns != "" {
		f, err := os.Open(netns)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace: %w", err)
		}
		defer f.Close()
		cfg.NetNS = int(f.Fd())
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	// struct nfgenmsg: family, version, resource id.
	hdr := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}
	msgs, err := conn.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append(hdr, attrs...),
	})
	if err != nil {
		return nil, err
	}
	var out []LiveRule
	for _, m := range msgs {
		if len(m.Data) < 4 {
			return nil, fmt.Errorf("short rule message (%d bytes)", len(m.Data))
		}
		r, err := decodeRule(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("decoding a rule of chain %s: %w", chain, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeRule decodes the attributes of one rule message (after its
// nfgenmsg header).
func decodeRule(b []byte) (LiveRule, error) {
	var r LiveRule
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return r, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_HANDLE:
			r.Handle = ad.Uint64()
		case unix.NFTA_RULE_USERDATA:
			r.UserData = ad.Bytes()
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					if nd.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					e, err := decodeExpr(nd.Bytes())
					if err != nil {
						return err
					}
					r.Exprs = append(r.Exprs, e)
				}
				return nil
			})
		}
	}
	return r, ad.Err()
}

// decodeExpr decodes one NFTA_LIST_ELEM of a rule's expressions; one of
// a kind this package does not know is Opaque.
func decodeExpr(b []byte) (Expr, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	var name string
	var data []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	var e expr.Any
	switch name {
	case "meta":
		e = &expr.Meta{}
	case "cmp":
		e = &expr.Cmp{}
	case "payload":
		e = &expr.Payload{}
	case "bitwise":
		e = &expr.Bitwise{}
	case "lookup":
		e = &expr.Lookup{}
	case "fib":
		e = &expr.Fib{}
	case "reject":
		e = &expr.Reject{}
	case "socket":
		e = &expr.Socket{}
	case "ct":
		e = &expr.Ct{}
	case "immediate":
		// A verdict is an immediate that writes the verdict register.
		im := &expr.Immediate{}
		if err := expr.Unmarshal(unix.NFPROTO_INET, data, im); err != nil {
			return nil, fmt.Errorf("expression %s: %w", name, err)
		}
		if im.Register != unix.NFT_REG_VERDICT || len(im.Data) != 0 {
			return ownExpr(im), nil
		}
		e = &expr.Verdict{}
	default:
		return Opaque{Name: name, Data: data}, nil
	}
	if err := expr.Unmarshal(unix.NFPROTO_INET, data, e); err != nil {
		return nil, fmt.Errorf("expression %s: %w", name, err)
	}
	return ownExpr(e), nil
}

//go:build linux

package nftfw

import (
	"encoding/binary"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestKernelNumbers checks the numbers the pure files write out against
// the Linux headers (as golang.org/x/sys/unix and the nftables library
// spell them).
func TestKernelNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"NF_INET_LOCAL_IN", hookInput, int64(*nftables.ChainHookInput)},
		{"NF_INET_LOCAL_OUT", hookOutput, int64(*nftables.ChainHookOutput)},
		{"NF_DROP policy", policyDrop, int64(nftables.ChainPolicyDrop)},
		{"NF_ACCEPT policy", policyAcc, int64(nftables.ChainPolicyAccept)},
		{"filter priority", 0, int64(*nftables.ChainPriorityFilter)},
		{"NFT_META_SKUID", metaSKUID, unix.NFT_META_SKUID},
		{"NFT_META_L4PROTO", metaL4Proto, unix.NFT_META_L4PROTO},
		{"NFT_CMP_EQ", cmpEq, unix.NFT_CMP_EQ},
		{"NFT_CMP_NEQ", cmpNeq, unix.NFT_CMP_NEQ},
		{"NFT_PAYLOAD_TRANSPORT_HEADER", payloadTransport, unix.NFT_PAYLOAD_TRANSPORT_HEADER},
		{"NFT_REJECT_TCP_RST", rejectTCPReset, unix.NFT_REJECT_TCP_RST},
		{"NFT_REJECT_ICMPX_UNREACH", rejectICMPXUnreach, unix.NFT_REJECT_ICMPX_UNREACH},
		{"NFT_REJECT_ICMPX_PORT_UNREACH", icmpxPortUnreach, unix.NFT_REJECT_ICMPX_PORT_UNREACH},
		{"NFT_SOCKET_MARK", socketMark, int64(expr.SocketKeyMark)},
		{"NF_DROP verdict", verdictDrop, int64(expr.VerdictDrop)},
		{"RTN_LOCAL", rtnLocal, unix.RTN_LOCAL},
		{"IPPROTO_TCP", protoTCP, unix.IPPROTO_TCP},
		{"IPPROTO_UDP", protoUDP, unix.IPPROTO_UDP},
		{"inet_service", typeInetService, int64(nftables.TypeInetService.GetNFTMagic())},
		{"inet_service size", 2, int64(nftables.TypeInetService.Bytes)},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d here, %d in Linux", c.name, c.got, c.want)
		}
	}

	if string(nftables.ChainTypeFilter) != "filter" {
		t.Errorf("the filter chain type is %q in Linux", nftables.ChainTypeFilter)
	}
}

// encodeRule writes exprs and a comment as the kernel lists a rule (the
// attributes after the nfgenmsg header).
func encodeRule(t testing.TB, handle uint64, name string, exprs []Expr) []byte {
	t.Helper()
	var elems []netlink.Attribute
	for _, e := range exprs {
		x, err := nftExpr(e)
		if err != nil {
			t.Fatal(err)
		}
		b, err := expr.Marshal(unix.NFPROTO_INET, x)
		if err != nil {
			t.Fatal(err)
		}
		elems = append(elems, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
	}
	list, err := netlink.MarshalAttributes(elems)
	if err != nil {
		t.Fatal(err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_RULE_TABLE, TableName)
	ae.Uint64(unix.NFTA_RULE_HANDLE, handle)
	ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, list)
	ae.Bytes(unix.NFTA_RULE_USERDATA, comment(name))
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRuleRoundTrip encodes every rendered rule as the kernel would list it
// and decodes it again: the rule reads back the same, by the same canonical
// text, with its name and handle.
func TestRuleRoundTrip(t *testing.T) {
	for _, alb := range []bool{false, true} {
		tbl, err := Render(mustPlan(t, proxyPorts, alb), offUID)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range append(tbl.OutputRules, tbl.InputRules...) {
			got, err := decodeRule(encodeRule(t, uint64(i+10), r.Name, r.Exprs))
			if err != nil {
				t.Fatalf("decoding rule %s: %v", r.Name, err)
			}
			a, b := takeApart(r.Exprs, r.Name, uint64(i+10)), takeApart(got.Exprs, readComment(got.UserData), got.Handle)
			if a != b {
				t.Errorf("rule %s read back as %+v, want %+v", r.Name, b, a)
			}
		}
	}
}

// FuzzDecodeRule feeds rule messages, real ones and mangled ones, to the
// decoder the read-back uses: it must not panic, and a rule it decodes can
// be taken apart.
func FuzzDecodeRule(f *testing.F) {
	tbl, err := Render(mustPlan(f, proxyPorts, false), offUID)
	if err != nil {
		f.Fatal(err)
	}
	for i, r := range append(tbl.OutputRules, tbl.InputRules...) {
		f.Add(encodeRule(f, uint64(i), r.Name, r.Exprs))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRule(b)
		if err != nil {
			return
		}
		takeApart(r.Exprs, readComment(r.UserData), r.Handle)
	})
}

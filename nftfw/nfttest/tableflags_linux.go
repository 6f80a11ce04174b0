//go:build linux

package nfttest

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SetTableFlags sets the flags of the existing inet table name in the
// network namespace at netns ("" is the caller's own), as `nft add table
// inet NAME '{ flags dormant; }'` does for unix.NFT_TABLE_F_DORMANT, in
// one nftables transaction of its own. It speaks netlink itself because
// github.com/google/nftables (v0.3.0) sends the flags of a table it adds
// as zero, whatever Table.Flags says.
func SetTableFlags(netns, name string, flags uint32) error {
	cfg := &netlink.Config{}
	if netns != "" {
		f, err := os.Open(netns)
		if err != nil {
			return fmt.Errorf("opening network namespace: %w", err)
		}
		defer f.Close()
		cfg.NetNS = int(f.Fd())
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return fmt.Errorf("connecting to nftables: %w", err)
	}
	defer conn.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: []byte(name + "\x00")},
		{Type: unix.NFTA_TABLE_FLAGS, Data: binary.BigEndian.AppendUint32(nil, flags)},
	})
	if err != nil {
		return err
	}
	// struct nfgenmsg: family, version, resource id (big-endian; for the
	// batch markers, the subsystem).
	batchHdr := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	msgs := []netlink.Message{
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request}, Data: batchHdr},
		{Header: netlink.Header{
			// No NLM_F_EXCL: the table exists and has its flags updated.
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
			Flags: netlink.Request | netlink.Acknowledge,
		}, Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...)},
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request}, Data: batchHdr},
	}
	if _, err := conn.SendMessages(msgs); err != nil {
		return fmt.Errorf("sending the flags of table inet %s: %w", name, err)
	}
	if _, err := conn.Receive(); err != nil { // the acknowledgement, or the refusal
		return fmt.Errorf("setting the flags of table inet %s to %#x: %w", name, flags, err)
	}
	return nil
}

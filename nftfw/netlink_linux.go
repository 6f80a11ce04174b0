//go:build linux

package nftfw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/google/nftables"

	"github.com/sandgate/sandgate/ruleplan"
)

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
	return ApplyTo(&Netlink{NetNS: netns}, plan, offlineUID)
}

// Remove deletes sandgate's table from the network namespace at netns (""
// is the caller's own). Removing a table that is not there is not an error.
func Remove(netns string) error { return (&Netlink{NetNS: netns}).Delete() }

// Verify compares sandgate's table in the network namespace at netns with
// what Apply(netns, plan, offlineUID) would install and returns each
// difference in plain words; nil means they agree. The error is for failing
// to read the rules at all (for example without CAP_NET_ADMIN).
func Verify(netns string, plan ruleplan.Plan, offlineUID uint32) ([]string, error) {
	return VerifyIn(&Netlink{NetNS: netns}, plan, offlineUID)
}

// Read returns sandgate's table in the network namespace at netns ("" is
// the caller's own), or nil when there is none. Reading needs CAP_NET_ADMIN.
func Read(netns string) (*Live, error) { return (&Netlink{NetNS: netns}).Read() }

// Netlink is the Backend of the kernel's nftables in the network namespace
// at NetNS ("" is the caller's own), spoken to over netlink.
type Netlink struct {
	NetNS string
	// beforeFlush, when set (by tests), is called with the connection
	// and the set just before Replace sends its batch, so a test can
	// make the transaction fail.
	beforeFlush func(c *nftables.Conn, set *nftables.Set)
}

// Replace implements Backend: "add table; delete table; add table ..." in
// one batch (the first add makes the delete valid whether or not the table
// exists).
func (n *Netlink) Replace(want Table) error {
	nt := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	out, in := nftChain(nt, want.Output), nftChain(nt, want.Input)
	if want.Set.KeyType != typeInetService || want.Set.KeyBytes != 2 || want.Set.Interval || want.Set.IsMap {
		return fmt.Errorf("set %s: only plain sets of type inet_service can be installed", want.Set.Name)
	}
	set := &nftables.Set{Table: nt, Name: want.Set.Name, KeyType: nftables.TypeInetService}
	elems := make([]nftables.SetElement, len(want.Ports))
	for i, p := range want.Ports {
		elems[i] = nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)}
	}
	outRules, err := nftRules(nt, out, want.OutputRules)
	if err != nil {
		return err
	}
	inRules, err := nftRules(nt, in, want.InputRules)
	if err != nil {
		return err
	}

	c, done, err := dial(n.NetNS)
	if err != nil {
		return err
	}
	defer done()
	c.AddTable(nt)
	c.DelTable(nt)
	c.AddTable(nt)
	c.AddChain(out)
	if err := c.AddSet(set, elems); err != nil {
		return fmt.Errorf("preparing set %s: %w", SetName, err)
	}
	for _, r := range outRules {
		c.AddRule(r)
	}
	c.AddChain(in)
	for _, r := range inRules {
		c.AddRule(r)
	}
	if n.beforeFlush != nil {
		n.beforeFlush(c, set)
	}
	if err := c.Flush(); err != nil {
		return netlinkErr("installing "+tableDesc+" (the transaction was refused, so the rules installed before are unchanged)", err)
	}
	return nil
}

// Delete implements Backend.
func (n *Netlink) Delete() error { return deleteTable(n.NetNS, TableName, "removing "+tableDesc) }

// deleteTable deletes the inet table name in the network namespace at
// netns, if it is there; what says what in errors.
func deleteTable(netns, name, what string) error {
	c, done, err := dial(netns)
	if err != nil {
		return err
	}
	defer done()
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return netlinkErr(what, err)
	}
	return nil
}

// Read implements Backend.
func (n *Netlink) Read() (*Live, error) {
	c, done, err := dial(n.NetNS)
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
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, netlinkErr("listing the chains of "+tableDesc, err)
	}
	var ours []Chain
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == TableName {
			ours = append(ours, ownChain(ch))
		}
	}
	sets, ports, err := readSets(c, t)
	if err != nil {
		return nil, err
	}
	rules := map[string][]LiveRule{}
	for _, ch := range ours {
		if ch.Name != ChainName && ch.Name != InputChainName {
			continue
		}
		rs, err := readRules(n.NetNS, ch.Name)
		if err != nil {
			return nil, netlinkErr("reading the rules of chain "+ch.Name, err)
		}
		rules[ch.Name] = append(rules[ch.Name], rs...)
	}
	return NewLive(ours, sets, ports, rules[ChainName], rules[InputChainName]).WithTableFlags(tableFlags(t)), nil
}

// tableFlags returns the flags of a table as listed by google/nftables,
// which decodes NFTA_TABLE_FLAGS (big-endian on the wire) in the host's
// byte order: the bytes are put back and read the right way.
func tableFlags(t *nftables.Table) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
}

// readSets lists the sets of table t and the elements of the proxy_ports
// set (nil when it is missing or has keys of another size).
func readSets(c *nftables.Conn, t *nftables.Table) ([]Set, []uint16, error) {
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, nil, netlinkErr("listing the sets of "+tableDesc, err)
	}
	var own []Set
	var ports []uint16
	for _, s := range sets {
		own = append(own, Set{Name: s.Name, KeyType: s.KeyType.GetNFTMagic(), KeyBytes: s.KeyType.Bytes, Interval: s.Interval, IsMap: s.IsMap})
		if s.Name != SetName || s.KeyType.Bytes != 2 {
			continue
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return nil, nil, netlinkErr("reading set "+SetName, err)
		}
		if ports == nil {
			ports = []uint16{}
		}
		for _, e := range elems {
			if len(e.Key) == 2 && !e.IntervalEnd {
				ports = append(ports, binary.BigEndian.Uint16(e.Key))
			}
		}
	}
	return own, ports, nil
}

// dial opens a netlink connection to nftables in the namespace at netns,
// with more options.
func dial(netns string, more ...nftables.ConnOption) (*nftables.Conn, func(), error) {
	opts := append([]nftables.ConnOption{nftables.AsLasting()}, more...)
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
		return nil, nil, netlinkErr("connecting to nftables in "+where(netns), err)
	}
	return c, func() { c.CloseLasting() }, nil
}

// where names the network namespace at netns in messages.
func where(netns string) string {
	if netns == "" {
		return "this network namespace"
	}
	return "network namespace " + netns
}

// netlinkErr wraps err with what was being done, and says what a permission
// error means.
func netlinkErr(what string, err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%s: %w (changing or reading nftables rules needs root, or CAP_NET_ADMIN)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

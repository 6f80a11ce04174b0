package nftfw

import "github.com/sandgate/sandgate/ruleplan"

// Backend is nftables in one network namespace, reduced to what this
// package does with it. netlink_linux.go implements it with netlink
// (Netlink); tests implement it in memory.
type Backend interface {
	// Replace deletes sandgate's table, if there is one, and installs t
	// instead, in one transaction: the kernel applies all of it or none
	// of it, and packets see either the old rules or the new ones.
	Replace(t Table) error
	// Delete deletes sandgate's table; a table that is not there is not
	// an error.
	Delete() error
	// Read returns sandgate's table as the kernel lists it now, or nil
	// when there is none.
	Read() (*Live, error)
}

// ApplyTo renders plan for offlineUID (see Render) and has b replace
// sandgate's table with it.
func ApplyTo(b Backend, plan ruleplan.Plan, offlineUID uint32) error {
	t, err := Render(plan, offlineUID)
	if err != nil {
		return err
	}
	return b.Replace(t)
}

// VerifyIn compares sandgate's table in b with what ApplyTo(b, plan,
// offlineUID) would install and returns each difference in plain words;
// nil means they agree. The error is for failing to read the rules at all.
func VerifyIn(b Backend, plan ruleplan.Plan, offlineUID uint32) ([]string, error) {
	live, err := b.Read()
	if err != nil {
		return nil, err
	}
	if live == nil {
		return []string{tableDesc + " is missing"}, nil
	}
	return live.Diff(plan, offlineUID)
}

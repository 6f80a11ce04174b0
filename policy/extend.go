package policy

import "fmt"

// WithAllow returns a copy of p with entry added to its allow list; p is not
// changed. The entry is parsed like a --allow value.
func (p *Policy) WithAllow(entry string) (*Policy, error) {
	e, err := parseEntry(entry)
	if err != nil {
		return nil, fmt.Errorf("invalid allow entry %q: %w", entry, err)
	}
	q := p.clone()
	q.allow = append(q.allow, e)
	return q, nil
}

// WithDeny returns a copy of p with entry added to its deny list; p is not
// changed. The entry is parsed like a --deny value.
func (p *Policy) WithDeny(entry string) (*Policy, error) {
	e, err := parseEntry(entry)
	if err != nil {
		return nil, fmt.Errorf("invalid deny entry %q: %w", entry, err)
	}
	q := p.clone()
	q.deny = append(q.deny, e)
	return q, nil
}

// Entries returns the raw allow and deny entries of p, in order.
func (p *Policy) Entries() (allow, deny []string) {
	for _, e := range p.allow {
		allow = append(allow, e.String())
	}
	for _, e := range p.deny {
		deny = append(deny, e.String())
	}
	return allow, deny
}

// clone copies p so that appending to a list of the copy never writes into
// p's backing arrays. A nil p clones to an empty policy.
func (p *Policy) clone() *Policy {
	if p == nil {
		return &Policy{}
	}
	q := *p
	q.allow = append([]Entry(nil), p.allow...)
	q.deny = append([]Entry(nil), p.deny...)
	return &q
}

package policy

import (
	"errors"
	"strconv"
)

// CheckName decides whether the name (already normalised) is allowed on at
// least one port, before any lookup: the question a DNS stub asks, which
// does not know the port yet. It is allowed when some allow entry matches
// the name on a port that no deny entry for the name covers; a deny entry
// without a port refuses the name outright, while one with a port refuses
// only that port (the name still resolves, and the connection is decided
// on its port). The Text names the name without a port.
func (p *Policy) CheckName(name string) Decision {
	if p == nil {
		return Decision{Block: BlockAllowlist, Reason: ReasonNotAllowed, Text: name + " is refused: no policy is configured"}
	}
	if n, err := normalizeName(name); err != nil || n != name {
		if errors.Is(err, ErrNumericName) {
			return Decision{Block: BlockAddress, Reason: ReasonNumericName, Text: name + " looks like a numeric address, not a name"}
		}
		return Decision{Block: BlockAddress, Reason: ReasonInvalidHost, Text: strconv.Quote(name) + " is not a valid host name"}
	}
	deniedOn := func(port uint16) *Entry {
		for i, e := range p.deny {
			if e.Kind != KindPrefix && (e.Port == 0 || e.Port == port) && e.matchesName(name) {
				return &p.deny[i]
			}
		}
		return nil
	}
	if e := deniedOn(0); e != nil && e.Port == 0 {
		return deniedBy(name+" ", *e)
	}
	var denied *Entry
	for _, e := range p.allow {
		if e.Kind == KindPrefix || !e.matchesName(name) {
			continue
		}
		if e.Port == 0 {
			// Any port: a deny entry can cover only some of them.
			return Decision{Allow: true, Reason: ReasonAllowed, Text: name + " is allowed by allow entry " + strconv.Quote(e.Raw), Entry: e.Raw}
		}
		if d := deniedOn(e.Port); d != nil {
			denied = d
			continue
		}
		return Decision{Allow: true, Reason: ReasonAllowed, Text: name + " is allowed by allow entry " + strconv.Quote(e.Raw), Entry: e.Raw}
	}
	if denied != nil {
		return deniedBy(name+" ", *denied)
	}
	return Decision{Block: BlockAllowlist, Reason: ReasonNotAllowed, Text: name + " is not on the allow list"}
}

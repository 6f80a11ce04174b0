package ruleplan

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sandgate/sandgate/policy"
)

// MaxPorts is the most proxy ports a port list may name (and the most the
// nftables rendering puts in one set).
const MaxPorts = 1024

// Ranges returns ports (in any order, repeats allowed) as the fewest
// inclusive ranges, in ascending order: {3128, 8081, 8080} is 3128,
// 8080-8081.
func Ranges(ports []uint16) []PortRange {
	ps := slices.Compact(slices.Sorted(slices.Values(ports)))
	var out []PortRange
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		out = append(out, PortRange{ps[i], ps[j]})
		i = j + 1
	}
	return out
}

// FormatPorts writes ports compactly as ranges, the way `sandgate setup
// --ports` takes them: "47100-47115", "3128,8080-8081" ("" for none).
func FormatPorts(ports []uint16) string { return FormatRanges(Ranges(ports)) }

// ParsePorts parses a port list as `sandgate setup --ports` takes it:
// comma-separated ports and inclusive ranges ("47100-47115", "3128,1080",
// "3128, 8080-8081"), spaces around each allowed. It returns the ports
// sorted and de-duplicated, at most MaxPorts of them.
func ParsePorts(s string) ([]uint16, error) {
	var out []uint16
	seen := make(map[uint16]bool)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, errors.New("empty entry")
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := listPort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = listPort(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %s runs backwards", part)
			}
		}
		for p := int(a); p <= int(b) && len(out) <= MaxPorts; p++ {
			if !seen[uint16(p)] {
				seen[uint16(p)] = true
				out = append(out, uint16(p))
			}
		}
		if len(out) > MaxPorts {
			return nil, fmt.Errorf("more than %d ports", MaxPorts)
		}
	}
	return NormalizePorts(out)
}

// listPort parses one port of a port list (see policy.ParsePort), spaces
// around it allowed, in the words port-list errors have always used.
func listPort(s string) (uint16, error) {
	p, err := policy.ParsePort(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return p, nil
}

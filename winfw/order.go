package winfw

import (
	"fmt"
	"slices"
	"strings"
)

// Op is what one step does.
type Op int

const (
	// OpAdd adds a new rule, every field set before it is added.
	OpAdd Op = iota
	// OpRefresh sets every field of the existing rule again, in place, to
	// the values it already has (used only for rules that already match).
	OpRefresh
	// OpRemove removes every rule with the name.
	OpRemove
)

// String returns "add", "refresh" or "remove".
func (o Op) String() string {
	switch o {
	case OpAdd:
		return "add"
	case OpRefresh:
		return "refresh"
	case OpRemove:
		return "remove"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Step is one change to the firewall. After each add and refresh the
// executor reads the rule back and verifies it; after each remove it
// verifies the name is gone.
type Step struct {
	Op   Op
	Name string
	Rule Rule   // the rule to add or refresh
	Why  string // in words, for logs and errors
}

// String formats the step for a log line.
func (s Step) String() string { return s.Op.String() + " " + s.Name + ": " + s.Why }

// PlanSteps returns the steps that take the installed rules (current, as
// read back; rules not IsOurs are ignored) to exactly want, in an order
// that never lets the offline user's traffic through where either the
// installed rules or the wanted ones block it:
//
//   - When every wanted rule is installed once and matches, and no other
//     rule of ours exists, each rule is refreshed in place (every field set
//     again to the value it has), in plan order. Nothing is loosened, not
//     even for a moment.
//   - Otherwise the transition rule, which blocks every packet of the
//     offline user, is put in place first (refreshed if a matching one is
//     left from a failed run, else removed and added fresh). Under it the
//     wanted rules are refreshed (when matching), or removed and added
//     fresh (when different or duplicated), or added (when missing), in
//     plan order, broadest first; rules of ours no longer wanted are
//     removed; and the transition rule is removed last, leaving exactly
//     the wanted rules. If a step fails, the transition rule stays and the
//     offline user has no network at all until an Apply succeeds.
//   - With nothing wanted (uninstall), rules of ours are removed, the
//     loopback rules first, the non-loopback block after them and a
//     leftover transition rule last.
//
// want must not contain two rules of one name, nor the transition rule.
func PlanSteps(current []Observed, want []Rule, transition Rule) ([]Step, error) {
	wantNames := map[string]bool{}
	for _, w := range want {
		if wantNames[w.Name] || w.Name == transition.Name || !IsOurs(w.Name) {
			return nil, fmt.Errorf("wanted rule name %q is duplicated, reserved or not sandgate's", w.Name)
		}
		wantNames[w.Name] = true
	}
	byName := map[string][]Observed{}
	var names []string
	for _, c := range current {
		if !IsOurs(c.Name) {
			continue
		}
		if _, seen := byName[c.Name]; !seen {
			names = append(names, c.Name)
		}
		byName[c.Name] = append(byName[c.Name], c)
	}
	slices.Sort(names)
	matches := func(r Rule) bool {
		got := byName[r.Name]
		return len(got) == 1 && len(Compare(r, got[0])) == 0
	}

	if len(want) == 0 {
		var steps []Step
		var last []string
		for _, n := range names {
			if n == transition.Name || strings.Contains(n, "nonlocal") {
				last = append(last, n)
				continue
			}
			steps = append(steps, Step{Op: OpRemove, Name: n, Why: "not wanted"})
		}
		// The non-loopback block before the transition rule ("block-all"
		// sorts before "block-nonlocal", so order them explicitly).
		slices.SortFunc(last, func(a, b string) int {
			if a == transition.Name {
				return 1
			}
			if b == transition.Name {
				return -1
			}
			return strings.Compare(a, b)
		})
		for _, n := range last {
			steps = append(steps, Step{Op: OpRemove, Name: n, Why: "not wanted"})
		}
		return steps, nil
	}

	steady := len(byName[transition.Name]) == 0
	for _, w := range want {
		steady = steady && matches(w)
	}
	for _, n := range names {
		steady = steady && (wantNames[n] || n == transition.Name)
	}
	if steady {
		steps := make([]Step, 0, len(want))
		for _, w := range want {
			steps = append(steps, Step{Op: OpRefresh, Name: w.Name, Rule: w, Why: "installed and current; every field set again"})
		}
		return steps, nil
	}

	var steps []Step
	switch {
	case matches(transition):
		steps = append(steps, Step{Op: OpRefresh, Name: transition.Name, Rule: transition, Why: "left from an earlier setup; keeps the offline user shut while its rules change"})
	case len(byName[transition.Name]) > 0:
		steps = append(steps,
			Step{Op: OpRemove, Name: transition.Name, Why: "left from an earlier setup and not as wanted"},
			Step{Op: OpAdd, Name: transition.Name, Rule: transition, Why: "shuts the offline user out while its rules change"})
	default:
		steps = append(steps, Step{Op: OpAdd, Name: transition.Name, Rule: transition, Why: "shuts the offline user out while its rules change"})
	}
	for _, w := range want {
		got := byName[w.Name]
		switch {
		case len(got) == 0:
			steps = append(steps, Step{Op: OpAdd, Name: w.Name, Rule: w, Why: "missing"})
		case matches(w):
			steps = append(steps, Step{Op: OpRefresh, Name: w.Name, Rule: w, Why: "installed and current; every field set again"})
		default:
			why := fmt.Sprintf("installed %d times", len(got))
			if len(got) == 1 {
				why = strings.Join(Compare(w, got[0]), "; ")
			}
			steps = append(steps,
				Step{Op: OpRemove, Name: w.Name, Why: why},
				Step{Op: OpAdd, Name: w.Name, Rule: w, Why: "replaces the rule removed above"})
		}
	}
	for _, n := range names {
		if !wantNames[n] && n != transition.Name {
			steps = append(steps, Step{Op: OpRemove, Name: n, Why: "no longer wanted"})
		}
	}
	steps = append(steps, Step{Op: OpRemove, Name: transition.Name, Why: "the wanted rules are in place and verified"})
	return steps, nil
}

package winfw

import (
	"errors"
	"fmt"
	"strings"
)

// Backend is a firewall that Apply changes. firewall_windows.go implements
// it with Windows Firewall; tests implement it in memory.
type Backend interface {
	// List returns every rule whose name IsOurs, as read back now.
	List() ([]Observed, error)
	// Add adds r as a new rule, with every field set before it is added.
	Add(r Rule) error
	// Refresh sets every field of the existing rule named r.Name to r's.
	Refresh(r Rule) error
	// Remove removes every rule named name.
	Remove(name string) error
}

// ErrVerify is wrapped by the errors Apply returns when a rule read back
// differs from what was written.
var ErrVerify = errors.New("firewall rule verification failed")

// Apply takes the firewall's rules of ours to exactly want (see PlanSteps
// for the order) and returns the steps it took. After every add and
// refresh it reads the rule back and requires exactly one rule of that
// name, identical to what it wrote; after every remove it requires the
// name gone; at the end it requires exactly want. logf (may be nil)
// receives one line per step. On failure the error names the step and, when
// the transition rule is in place, says that the offline user stays shut.
func Apply(b Backend, want []Rule, transition Rule, logf func(format string, args ...any)) ([]Step, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	current, err := b.List()
	if err != nil {
		return nil, fmt.Errorf("reading the installed firewall rules: %w", err)
	}
	steps, err := PlanSteps(current, want, transition)
	if err != nil {
		return nil, err
	}
	transitionIn := false
	for i, s := range steps {
		logf("firewall: %s", s)
		if err := runStep(b, s); err != nil {
			msg := fmt.Sprintf("firewall step %d of %d (%s %s): %v", i+1, len(steps), s.Op, s.Name, err)
			if transitionIn {
				msg += fmt.Sprintf("; the rule %s stays in place, so the offline sandbox user has no network access until `sandgate setup` succeeds", transition.Name)
			}
			return steps[:i], errors.New(msg)
		}
		if s.Name == transition.Name {
			transitionIn = s.Op != OpRemove
		}
	}
	if err := Verify(b, want); err != nil {
		return steps, err
	}
	return steps, nil
}

func runStep(b Backend, s Step) error {
	switch s.Op {
	case OpAdd, OpRefresh:
		var err error
		if s.Op == OpAdd {
			err = b.Add(s.Rule)
		} else {
			err = b.Refresh(s.Rule)
		}
		if err != nil {
			return err
		}
		return verifyOne(b, s.Rule)
	case OpRemove:
		if err := b.Remove(s.Name); err != nil {
			return err
		}
		got, err := b.List()
		if err != nil {
			return fmt.Errorf("reading back: %w", err)
		}
		for _, g := range got {
			if g.Name == s.Name {
				return fmt.Errorf("%w: %s is still installed after removing it", ErrVerify, s.Name)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown step %v", s.Op)
}

func verifyOne(b Backend, r Rule) error {
	got, err := b.List()
	if err != nil {
		return fmt.Errorf("reading back: %w", err)
	}
	var same []Observed
	for _, g := range got {
		if g.Name == r.Name {
			same = append(same, g)
		}
	}
	if len(same) != 1 {
		return fmt.Errorf("%w: %d rules named %s after writing it, want 1", ErrVerify, len(same), r.Name)
	}
	if d := Compare(r, same[0]); len(d) > 0 {
		return fmt.Errorf("%w: %s as read back: %s", ErrVerify, r.Name, strings.Join(d, "; "))
	}
	return nil
}

// Verify requires the firewall's rules of ours to be exactly want, each
// installed once and as written. It is what `sandgate setup --check` and
// every identity run use to refuse stale or tampered rules.
func Verify(b Backend, want []Rule) error {
	got, err := b.List()
	if err != nil {
		return fmt.Errorf("reading the installed firewall rules: %w", err)
	}
	if d := Differences(got, want); len(d) > 0 {
		return fmt.Errorf("%w: %s", ErrVerify, strings.Join(d, "; "))
	}
	return nil
}

// Differences lists, in words, how the installed rules of ours differ
// from want; nil when they are exactly want.
func Differences(current []Observed, want []Rule) []string {
	var d []string
	byName := map[string][]Observed{}
	for _, c := range current {
		if IsOurs(c.Name) {
			byName[c.Name] = append(byName[c.Name], c)
		}
	}
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.Name] = true
		got := byName[w.Name]
		switch len(got) {
		case 0:
			d = append(d, fmt.Sprintf("firewall rule %s is missing", w.Name))
		case 1:
			for _, x := range Compare(w, got[0]) {
				d = append(d, fmt.Sprintf("firewall rule %s: %s", w.Name, x))
			}
		default:
			d = append(d, fmt.Sprintf("firewall rule %s is installed %d times", w.Name, len(got)))
		}
	}
	for _, c := range current {
		if IsOurs(c.Name) && !wanted[c.Name] {
			if c.Name == TransitionName {
				d = append(d, fmt.Sprintf("firewall rule %s is left from an unfinished setup (the offline user is shut out)", c.Name))
			} else {
				d = append(d, fmt.Sprintf("firewall rule %s is installed but not wanted", c.Name))
			}
			wanted[c.Name] = true // report once
		}
	}
	return d
}

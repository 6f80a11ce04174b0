package setup

import (
	"fmt"

	"github.com/sandgate/sandgate/dirgrant"
)

// This file is what setup does about the working-directory grants that
// identity runs which did not end cleanly (killed, or the machine stopped)
// left behind (package dirgrant): Install, Reconcile and Uninstall take
// them back, as every identity run does first (RepairGrants), and Check
// reports them.

// RepairGrants takes back every grant in r that no run holds (see
// dirgrant.Records.Repair), and returns what it did (and what it could not
// do) in words, one message each: what setup prints, and what an identity
// run tells its user before it takes its own grant.
func RepairGrants(r dirgrant.Records) []string {
	var out []string
	fixed, err := r.Repair(func(f string, a ...any) { out = append(out, fmt.Sprintf(f, a...)) })
	for _, l := range fixed {
		if l.Kept {
			out = append(out, "removed "+l.String()+" (the grant stays, as that run asked)")
		} else {
			out = append(out, "took back "+l.String()+", restoring the directory's previous ACL")
		}
	}
	if err != nil {
		out = append(out, "could not take back every directory grant left by identity runs that did not end cleanly: "+err.Error())
	}
	return out
}

// grantProblems reports each grant in r that no run holds, with its fix.
func grantProblems(r dirgrant.Records) []string {
	lo, err := r.Leftovers()
	var out []string
	for _, l := range lo {
		fix := "run `sandgate setup` to take it back"
		if l.Kept {
			fix = "run `sandgate setup` to remove the record (the grant stays)"
		}
		out = append(out, l.String()+"; "+fix)
	}
	if err != nil {
		out = append(out, "could not check for directory grants left by identity runs that did not end cleanly: "+err.Error())
	}
	return out
}

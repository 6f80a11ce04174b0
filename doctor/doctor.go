// Package doctor says what this host can enforce and proves it: it reads
// the kernel's facilities (user namespaces, Landlock, seccomp, the identity
// setup) and runs one sandbox the way a default `sandgate run` would, with
// a probe inside that checks that direct TCP and UDP fail, a proxied
// request to a local target works and is audited, and a write outside the
// workspace fails.
//
// The report types and their rendering are pure; the probes live in the
// platform files.
package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Check is one line of the report.
type Check struct {
	Name     string `json:"name"`          // short, e.g. "user namespaces"
	OK       bool   `json:"ok"`            // the check holds
	Required bool   `json:"required"`      // a default run relies on it
	Detail   string `json:"detail"`        // what was found
	Fix      string `json:"fix,omitempty"` // what to do when it does not hold
}

// Report is the whole result of a doctor run.
type Report struct {
	OS     string  `json:"os"`
	Checks []Check `json:"checks"`
}

// OK reports whether every required check holds.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if c.Required && !c.OK {
			return false
		}
	}
	return true
}

// Failures returns the required checks that do not hold.
func (r Report) Failures() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Required && !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// WriteText writes the report for a person: one line per check, then one
// line per failure with its fix, then the verdict.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		mark := "ok  "
		switch {
		case !c.OK && c.Required:
			mark = "FAIL"
		case !c.OK:
			mark = "note"
		}
		fmt.Fprintf(&b, "%s  %-28s %s\n", mark, c.Name, c.Detail)
	}
	fails := r.Failures()
	if len(fails) == 0 {
		b.WriteString("sandgate doctor: everything a default `sandgate run` relies on holds on this host\n")
	} else {
		b.WriteString("\n")
		for _, c := range fails {
			fmt.Fprintf(&b, "%s: %s; fix: %s\n", c.Name, c.Detail, orNone(c.Fix))
		}
		fmt.Fprintf(&b, "sandgate doctor: %d of the checks a default run relies on failed\n", len(fails))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as one JSON object with an "ok" verdict.
func (r Report) WriteJSON(w io.Writer) error {
	out := struct {
		OK bool `json:"ok"`
		Report
	}{r.OK(), r}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func orNone(s string) string {
	if s == "" {
		return "none known"
	}
	return s
}

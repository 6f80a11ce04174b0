//go:build linux

package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// doctorReport is the part of `sandgate doctor --json` the tests read.
type doctorReport struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Name     string `json:"name"`
		OK       bool   `json:"ok"`
		Required bool   `json:"required"`
		Detail   string `json:"detail"`
	} `json:"checks"`
}

func runDoctor(t *testing.T, args ...string) (int, doctorReport, string) {
	t.Helper()
	cmd := exec.Command(sandgateBin, append([]string{"doctor", "--json"}, args...)...)
	cmd.Dir = t.TempDir()
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep doctorReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("doctor --json printed no report: %v\n%s\nstderr: %s", err, out, errb.String())
	}
	return code, rep, string(out)
}

// TestDoctorProvesDefaultRun: on this host (CI runs it as root, where every
// default-run facility is present) the doctor's proof passes, every
// required check holds, and it exits 0.
func TestDoctorProvesDefaultRun(t *testing.T) {
	requireSandgate(t)
	code, rep, out := runDoctor(t)
	if code != 0 || !rep.OK {
		t.Fatalf("doctor: exit %d, ok %v\n%s", code, rep.OK, out)
	}
	want := []string{"user namespaces", "Landlock", "seccomp", "direct TCP refused", "direct UDP refused",
		"proxied request works", "proxied request audited", "write outside workspace held", "git hook write refused"}
	for _, name := range want {
		found := false
		for _, c := range rep.Checks {
			if c.Name == name {
				found = true
				if !c.OK {
					t.Errorf("check %q failed: %s", name, c.Detail)
				}
			}
		}
		if !found {
			t.Errorf("the report has no check %q:\n%s", name, out)
		}
	}
}

// TestDoctorCatchesWeakerRun: with the file system view turned off for the
// proof (--fs host), the write checks fail and the doctor exits 1 naming
// them, so the proof can fail.
func TestDoctorCatchesWeakerRun(t *testing.T) {
	requireSandgate(t)
	code, rep, out := runDoctor(t, "--run-flag=--fs=host")
	if code != 1 || rep.OK {
		t.Fatalf("doctor with --fs host: exit %d, ok %v (want 1, false)\n%s", code, rep.OK, out)
	}
	failed := map[string]bool{}
	for _, c := range rep.Checks {
		if c.Required && !c.OK {
			failed[c.Name] = true
		}
	}
	if !failed["git hook write refused"] || !failed["write outside workspace held"] {
		t.Errorf("want the two write checks failed, got %v\n%s", failed, out)
	}
	if failed["direct TCP refused"] || failed["proxied request works"] {
		t.Errorf("network checks should still hold with --fs host: %v", failed)
	}
}

//go:build linux

package sandbox

import "testing"

func TestSeccompFiltered(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   bool
	}{
		{"Name:\tsandgate\nSeccomp:\t2\nSeccomp_filters:\t1\n", true},
		{"Name:\tsandgate\nSeccomp:\t0\nSeccomp_filters:\t0\n", false},
		{"Seccomp:\t1\n", false}, // strict mode: nothing could run
		{"Seccomp_filters:\t2\n", false},
		{"", false},
	} {
		if got := seccompFiltered(tc.status); got != tc.want {
			t.Errorf("seccompFiltered(%q) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

// FuzzSeccompFiltered: any status text is read without panicking, and a
// "Seccomp: 2" line first is always seen.
func FuzzSeccompFiltered(f *testing.F) {
	f.Add("Seccomp:\t2\n")
	f.Add("Name: x\nSeccomp: 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = seccompFiltered(s)
		if !seccompFiltered("Seccomp:\t2\n" + s) {
			t.Fatal("missed a leading Seccomp: 2")
		}
	})
}

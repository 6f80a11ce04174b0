//go:build linux

package sandbox

import (
	"slices"
	"strings"
	"testing"
)

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

func TestMaskedProc(t *testing.T) {
	const host = `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
23 22 0:22 / /proc/sys/fs/binfmt_misc rw,relatime shared:13 - autofs systemd-1 rw
24 1 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw
`
	const docker = `600 599 0:52 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
601 600 0:53 / /proc/acpi ro,relatime - tmpfs tmpfs ro
602 600 0:5 /null /proc/keys rw,nosuid - devtmpfs udev rw
603 600 0:5 /null /proc/timer_list rw,nosuid - devtmpfs udev rw
604 600 0:52 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
605 600 0:52 /fs /proc/fs ro,nosuid,nodev,noexec,relatime - proc proc rw
606 600 0:52 /irq /proc/irq ro,nosuid,nodev,noexec,relatime - proc proc rw
`
	if got := maskedProc(host); len(got) != 0 {
		t.Errorf("host mounts: %v, want none", got)
	}
	want := []string{"/proc/acpi", "/proc/keys", "/proc/timer_list", "/proc/bus", "/proc/fs", "…"}
	if got := maskedProc(docker); !slices.Equal(got, want) {
		t.Errorf("Docker's mounts: %v, want %v", got, want)
	}
	if got := maskedProc(strings.Repeat("x", 10) + "\n\n1 2 3"); len(got) != 0 {
		t.Errorf("garbage: %v", got)
	}
}

// FuzzMaskedProc: any mountinfo text is read without panicking, and what
// it returns is below /proc and at most six entries.
func FuzzMaskedProc(f *testing.F) {
	f.Add("601 600 0:53 / /proc/acpi ro - tmpfs tmpfs ro\n")
	f.Add("22 1 0:21 / /proc rw - proc proc rw\n")
	f.Fuzz(func(t *testing.T, s string) {
		got := maskedProc(s)
		if len(got) > 6 {
			t.Fatalf("%d entries", len(got))
		}
		for _, m := range got {
			if m != "…" && !strings.HasPrefix(m, "/proc/") {
				t.Fatalf("entry %q is not below /proc", m)
			}
		}
	})
}

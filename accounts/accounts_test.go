package accounts

import (
	"slices"
	"testing"
)

func TestSessionEnv(t *testing.T) {
	in := []string{"PATH=/bin", "HOME=/root", "USER=root", "LOGNAME=root", "SANDGATE_SOCKS_USER=u"}
	got := SessionEnv(in, "off", "/var/lib/sandgate/home/off")
	want := []string{"PATH=/bin", "SANDGATE_SOCKS_USER=u", "HOME=/var/lib/sandgate/home/off", "USER=off", "LOGNAME=off"}
	if !slices.Equal(got, want) {
		t.Errorf("SessionEnv = %q, want %q", got, want)
	}
	if in[1] != "HOME=/root" {
		t.Error("SessionEnv modified its input")
	}
	if got := SessionEnv([]string{"HOME=/root"}, "off", ""); !slices.Equal(got, []string{"USER=off", "LOGNAME=off"}) {
		t.Errorf("SessionEnv without a home = %q", got)
	}
}

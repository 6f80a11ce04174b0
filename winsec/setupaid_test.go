package winsec

import (
	"slices"
	"strings"
	"testing"
)

func TestValidAccountName(t *testing.T) {
	for _, ok := range []string{"sandgate-offline", "sandgate", "a", "x.y z", "01234567890123456789", "ünïcode"} {
		if err := ValidAccountName(ok); err != nil {
			t.Errorf("ValidAccountName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "012345678901234567890", "...", " . ", `a\b`, "a/b", "a@b", "a*", "a,b", "a\tb", `a"b`, "a:b", "a=b"} {
		if err := ValidAccountName(bad); err == nil {
			t.Errorf("ValidAccountName(%q) accepted", bad)
		}
	}
}

func TestElevationNotice(t *testing.T) {
	got := ElevationNotice("updating the sandbox setup", []string{"proxy ports changed from [3128] to [3128 8080]", "two\nlines"})
	want := "sandgate: updating the sandbox setup needs administrator rights (proxy ports changed from [3128] to [3128 8080]; two lines); Windows will ask for permission now"
	if got != want {
		t.Errorf("ElevationNotice =\n%q\nwant\n%q", got, want)
	}
	if strings.Contains(ElevationNotice("x", nil), "()") {
		t.Error("empty reasons printed as ()")
	}
}

func TestUserProfileVars(t *testing.T) {
	env := []string{`Path=C:\bin`, `USERPROFILE=C:\Users\alice`, `Temp=C:\Users\alice\AppData\Local\Temp`, `APPDATA=C:\Users\alice\AppData\Roaming`, `HOME=C:\Users\alice`, `OneDrive=C:\Users\alice\OneDrive`, "HTTP_PROXY=http://u:p@127.0.0.1:1"}
	profile := []string{`USERPROFILE=C:\Users\sandgate-offline`, `TEMP=C:\Users\sandgate-offline\AppData\Local\Temp`, `TMP=C:\Users\sandgate-offline\AppData\Local\Temp`, `APPDATA=C:\Users\sandgate-offline\AppData\Roaming`, `USERNAME=sandgate-offline`, `Path=C:\other`}
	got := UserProfileVars(env, profile)
	want := []string{
		`APPDATA=C:\Users\sandgate-offline\AppData\Roaming`,
		`HOME=C:\Users\sandgate-offline`,
		"HTTP_PROXY=http://u:p@127.0.0.1:1",
		`Path=C:\bin`,
		`TEMP=C:\Users\sandgate-offline\AppData\Local\Temp`,
		`TMP=C:\Users\sandgate-offline\AppData\Local\Temp`,
		`USERNAME=sandgate-offline`,
		`USERPROFILE=C:\Users\sandgate-offline`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("UserProfileVars =\n%q\nwant\n%q", got, want)
	}
	// No HOME in env: none added.
	for _, kv := range UserProfileVars([]string{"A=1"}, profile) {
		if strings.HasPrefix(kv, "HOME=") {
			t.Error("HOME added though the caller had none")
		}
	}
}

package setup

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandgate/sandgate/ruleplan"
)

// testMarker returns a current marker for ports and alb.
func testMarker(t *testing.T, ports []uint16, alb bool, offUID, onUID, gid int, names [3]string) Marker {
	t.Helper()
	plan, err := Options{ProxyPorts: ports, AllowLocalBinding: alb}.Plan()
	if err != nil {
		t.Fatal(err)
	}
	return Marker{
		SetupVersion: Version, PlanVersion: ruleplan.Version,
		OfflineUser: names[0], OnlineUser: names[1], Group: names[2],
		OfflineID: strconv.Itoa(offUID), OnlineID: strconv.Itoa(onUID), GroupID: strconv.Itoa(gid),
		ProxyPorts: plan.ProxyPorts, AllowLocalBinding: alb, RulesDigest: plan.Digest(),
		InstalledAt: time.Now().UTC(), InstalledBy: "setup test",
	}
}

func TestStaleReasons(t *testing.T) {
	var l Leaser
	m := testMarker(t, DefaultPorts(), false, 4001, 4002, 4003, [3]string{"off", "on", "grp"})
	if r := l.StaleReasons(m, Need{}); r != nil {
		t.Errorf("current marker: %v", r)
	}
	if r := l.StaleReasons(m, Need{AllowLocalBinding: true}); len(r) != 1 || r[0] != "allow_local_binding changed from false to true" {
		t.Errorf("local binding wanted: %v", r)
	}
	// The online user does not care about the offline rules' mode.
	if r := l.StaleReasons(m, Need{Online: true, AllowLocalBinding: true}); r != nil {
		t.Errorf("full network: %v", r)
	}
	custom := testMarker(t, []uint16{3128, 3129}, false, 4001, 4002, 4003, [3]string{"off", "on", "grp"})
	if r := l.StaleReasons(custom, Need{}); r != nil {
		t.Errorf("custom ports are the installed set, not drift: %v", r)
	}
	old := m
	old.SetupVersion = Version - 1
	if r := l.StaleReasons(old, Need{}); len(r) == 0 || !strings.Contains(r[0], "setup version changed") {
		t.Errorf("old setup version: %v", r)
	}
}

func TestFixCommand(t *testing.T) {
	if got := ruleplan.FormatPorts([]uint16{47103, 47100, 47101, 47102, 8080, 3128, 3129}); got != "3128-3129,8080,47100-47103" {
		t.Errorf("formatPorts = %q", got)
	}
	for _, c := range []struct {
		sudo, alb, installed bool
		ports                []uint16
		want                 string
	}{
		{true, true, false, nil, "sudo sandgate setup --allow-local-binding"},
		{false, false, true, nil, "sandgate setup --allow-local-binding=false"}, // setup keeps the installed mode otherwise
		{false, false, false, nil, "sandgate setup"},
		{false, true, true, nil, "sandgate setup --allow-local-binding"},
		{false, false, false, []uint16{3128, 3129}, "sandgate setup --ports 3128-3129"},
	} {
		if got := FixCommand(c.sudo, c.alb, c.installed, c.ports); got != c.want {
			t.Errorf("FixCommand(%v, %v, %v, %v) = %q, want %q", c.sudo, c.alb, c.installed, c.ports, got, c.want)
		}
	}
	if got := ruleplan.FormatPorts(widerRange([]uint16{47100, 47101})); got != "47100-47103" {
		t.Errorf("widerRange = %q", got)
	}
}

func TestUnavailableError(t *testing.T) {
	cause := errors.New("the prompt was declined")
	err := error(unavailable("reconciling failed: %w; run `%s`", cause, "sandgate setup"))
	var ue *UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, cause) || err.Error() != "reconciling failed: the prompt was declined; run `sandgate setup`" {
		t.Errorf("unavailable: %v (As %v, Is %v)", err, errors.As(err, &ue), errors.Is(err, cause))
	}
}

package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	// No build information at all, as with some stripped builds.
	v := readVersion(nil, false)
	if v.Module != "(devel)" || v.Revision != "unknown" || v.Time != "unknown" || v.Modified != "unknown" {
		t.Errorf("no build info: %+v", v)
	}
	if v.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("platform %q", v.Platform)
	}
	// -buildvcs=false: a module version but no vcs settings.
	v = readVersion(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true)
	if v.Module != "(devel)" || v.Revision != "unknown" || v.Go != "go1.26.8" {
		t.Errorf("no vcs: %+v", v)
	}
	// A checkout build.
	v = readVersion(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T00:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true)
	var b strings.Builder
	v.write(&b)
	for _, want := range []string{"sandgate v1.2.3\n", "revision: abc123\n", "commit time: 2026-12-01T00:00:00Z\n", "modified: true\n", "go: go1.26.8\n", "platform: "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("version text %q lacks %q", b.String(), want)
		}
	}
}

func TestVersionCommandAndFlag(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(out, "sandgate ") || !strings.Contains(out, "\ngo: "+runtime.Version()) ||
			!strings.Contains(out, "platform: "+runtime.GOOS+"/"+runtime.GOARCH) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

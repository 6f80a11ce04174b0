package config

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/fsview"
)

func TestFilesystemTable(t *testing.T) {
	src := `
[network]
allow_unix_sockets = ["~/.ssh/agent.sock"]

[filesystem]
mode = "readonly"
workspace = "~/src/app"
write = ["~/.cache/go-build", "/srv/out"]
deny_read = ["~/notes"]
allow_read = ["~/.ssh/known_hosts"]

[environment]
keep = ["GITHUB_TOKEN", "AWS_*"]
`
	f, err := Parse("c.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.View(FilesystemFlags{Write: []string{"/tmp/x"}, Hide: []string{"/srv/secret"}, Unhide: []string{"~/.aws/config"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Mode != fsview.ModeReadonly || v.Workspace != "~/src/app" {
		t.Errorf("view = %+v", v)
	}
	if !slices.Equal(v.Write, []string{"~/.cache/go-build", "/srv/out", "/tmp/x"}) ||
		!slices.Equal(v.Hide, []string{"~/notes", "/srv/secret"}) ||
		!slices.Equal(v.Unhide, []string{"~/.ssh/known_hosts", "~/.aws/config"}) {
		t.Errorf("flags do not add to the file: %+v", v)
	}
	// --fs and --workspace replace the file's.
	v, err = f.View(FilesystemFlags{Mode: "workspace", Workspace: "/srv/ws"})
	if err != nil || v.Mode != fsview.ModeWorkspace || v.Workspace != "/srv/ws" {
		t.Errorf("View with --fs/--workspace = %+v, %v", v, err)
	}
	if _, err := f.View(FilesystemFlags{Mode: "container"}); err == nil || !strings.Contains(err.Error(), "--fs") {
		t.Errorf("bad --fs: %v", err)
	}
	if got := f.UnixSockets([]string{"/run/docker.sock"}); !slices.Equal(got, []string{"~/.ssh/agent.sock", "/run/docker.sock"}) {
		t.Errorf("UnixSockets = %v", got)
	}
	if got := f.KeepEnv([]string{"NPM_TOKEN"}); !slices.Equal(got, []string{"GITHUB_TOKEN", "AWS_*", "NPM_TOKEN"}) {
		t.Errorf("KeepEnv = %v", got)
	}
	// Defaults: no table at all.
	e, _ := Parse("e.toml", nil)
	if v, err := e.View(FilesystemFlags{}); err != nil || v.Mode != fsview.ModeWorkspace || v.Workspace != "" {
		t.Errorf("default view = %+v, %v", v, err)
	}
}

// filesystemErrorCases are the [filesystem], allow_unix_sockets and
// [environment] rows of TestParseErrors.
var filesystemErrorCases = []struct {
	name      string
	src       string
	wantLine  int
	wantEntry string
	wantText  string
}{
	{"bad fs mode", "[filesystem]\nmode = \"jail\"\n", 2, "filesystem.mode", "unknown file system mode"},
	{"relative workspace", "[filesystem]\n\nworkspace = \"src\"\n", 3, "src", "filesystem.workspace"},
	{"relative write", "[filesystem]\nwrite = [\n  \"/ok\",\n  \"build\",\n]\n", 4, "build", "in filesystem.write: must be an absolute path"},
	{"relative deny_read", "[filesystem]\ndeny_read = [\"secrets\"]\n", 2, "secrets", "filesystem.deny_read"},
	{"relative allow_read", "[filesystem]\nallow_read = ['.ssh']\n", 2, ".ssh", "filesystem.allow_read"},
	{"relative socket", "[network]\nallow_unix_sockets = [\"agent.sock\"]\n", 2, "agent.sock", "network.allow_unix_sockets"},
	{"bad keep", "[environment]\nkeep = [\"A=B\"]\n", 2, "A=B", "environment.keep"},
	{"unknown fs key", "[filesystem]\nhide = [\"/x\"]\n", 2, "filesystem.hide", "unknown key"},
	{"unknown env key", "[environment]\npass = [\"X\"]\n", 2, "environment.pass", "unknown key"},
	{"wrong fs type", "[filesystem]\nwrite = \"/x\"\n", 0, "", ""},
}

func TestPathError(t *testing.T) {
	f, err := Parse("c.toml", []byte("[filesystem]\nworkspace = \"/srv/ws\"\nwrite = [\n  \"/srv/a\",\n  \"/srv/missing\",\n]\n"))
	if err != nil {
		t.Fatal(err)
	}
	base := errors.New("does not exist")
	err = f.PathError("filesystem.write", "/srv/missing", base)
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 5 || ce.Entry != "/srv/missing" || !errors.Is(err, base) {
		t.Errorf("PathError = %#v (%v)", err, err)
	}
	if err := f.PathError("filesystem.workspace", "/srv/ws", base); !errors.As(err, &ce) || ce.Line != 2 {
		t.Errorf("workspace PathError = %v", err)
	}
	// A path that came from a flag is not the file's.
	if err := f.PathError("filesystem.write", "/flag/path", base); err != base {
		t.Errorf("flag path = %v, want the error unchanged", err)
	}
}

func TestExpandHome(t *testing.T) {
	for in, want := range map[string]string{"~": "/home/u", "~/.ssh/a": "/home/u/.ssh/a", "/abs": "/abs", "~x": "~x"} {
		if got := ExpandHome(in, "/home/u"); got != want {
			t.Errorf("ExpandHome(%q) = %q, want %q", in, got, want)
		}
	}
}

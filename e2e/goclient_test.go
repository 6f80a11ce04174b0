//go:build linux

package e2e

import (
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// goModule is the module the fake GOPROXY serves.
const (
	goModPath    = "remote.test/hello"
	goModVersion = "v1.0.0"
	goModFile    = "module " + goModPath + "\n\ngo 1.21\n"
)

// goModuleZip builds the module zip of goModPath@goModVersion by hand, per
// the module zip format: every file under "path@version/".
func goModuleZip(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := map[string]string{
		"go.mod":   goModFile,
		"hello.go": "// Package hello greets.\npackage hello\n\n// Greeting is the greeting.\nconst Greeting = \"sgtest go module\"\n",
	}
	for name, body := range files {
		f, err := zw.Create(goModPath + "@" + goModVersion + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// goProxyHandler serves goModPath@goModVersion as a GOPROXY would, from
// static contents.
func goProxyHandler(t *testing.T) http.Handler {
	prefix := "/" + goModPath + "/@v/"
	files := map[string][]byte{
		prefix + "list":                 []byte(goModVersion + "\n"),
		prefix + goModVersion + ".info": []byte(`{"Version":"` + goModVersion + `","Time":"2024-01-01T00:00:00Z"}`),
		prefix + goModVersion + ".mod":  []byte(goModFile),
		prefix + goModVersion + ".zip":  goModuleZip(t),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})
}

// TestRealClientGoModDownload runs `go mod download` in a project that needs
// a module from a fake GOPROXY over HTTPS, under the default file system
// view: the module cache is written in the run's copy-on-write HOME (the run
// sees it), go.sum in the workspace, and nothing in the real HOME.
func TestRealClientGoModDownload(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed: %v", err)
	}
	d := newClientDirs(t)
	port := serveRemoteTLS(t, w, goProxyHandler(t))
	gomod := "module example.test/project\n\ngo 1.21\n\nrequire " + goModPath + " " + goModVersion + "\n"
	if err := os.WriteFile(filepath.Join(d.project, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}

	script := `set -e
export PATH="$(dirname "$2"):$PATH" GOTOOLCHAIN=local GOFLAGS=-mod=mod GOSUMDB=off GONOSUMDB=* GOTELEMETRY=off
export GOPROXY="https://remote.test:$3" SSL_CERT_FILE="$1"
unset GOPATH GOMODCACHE GOCACHE
go mod download
go mod download -json ` + goModPath + `@` + goModVersion + `
cat "$HOME/go/pkg/mod/` + goModPath + `@` + goModVersion + `/hello.go"
echo GO-MOD-OK`
	o := d.run(t, w, []string{"--allow", "remote.test"}, "/bin/sh", "-c", script, "sh", w.caFile, goBin, port)
	wantOutput(t, o, `"Dir": "`+filepath.Join(d.home, "go", "pkg", "mod", goModPath+"@"+goModVersion), "sgtest go module", "GO-MOD-OK")
	wantFile(t, filepath.Join(d.project, "go.sum"), goModPath+" "+goModVersion+" h1:")
	if _, err := os.Stat(filepath.Join(d.home, "go")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the real HOME has a go directory after the run (stat: %v)", err)
	}
	d.homeUnchanged(t)
}

//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// npmTarball builds the package tarball of sgtest-hello@1.0.0: a gzipped
// tar with everything under package/.
func npmTarball(t *testing.T) []byte {
	t.Helper()
	files := []struct{ name, body string }{
		{"package/package.json", `{"name":"sgtest-hello","version":"1.0.0","main":"index.js"}` + "\n"},
		{"package/index.js", "exports.greeting = 'sgtest npm package';\n"},
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// npmRegistryHandler serves the packument of sgtest-hello and its tarball,
// naming the tarball at the registry's URL as the client asked for it.
func npmRegistryHandler(t *testing.T) http.Handler {
	tgz := npmTarball(t)
	sha := sha1.Sum(tgz)
	integrity := sha512.Sum512(tgz)
	packument := func(base string) ([]byte, error) {
		return json.Marshal(map[string]any{
			"name":      "sgtest-hello",
			"dist-tags": map[string]string{"latest": "1.0.0"},
			"versions": map[string]any{
				"1.0.0": map[string]any{
					"name": "sgtest-hello", "version": "1.0.0", "main": "index.js",
					"dist": map[string]string{
						"tarball":   base + "sgtest-hello/-/sgtest-hello-1.0.0.tgz",
						"shasum":    hex.EncodeToString(sha[:]),
						"integrity": "sha512-" + base64.StdEncoding.EncodeToString(integrity[:]),
					},
				},
			},
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/sgtest-hello", func(w http.ResponseWriter, r *http.Request) {
		b, err := packument("https://" + r.Host + "/")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/sgtest-hello/-/sgtest-hello-1.0.0.tgz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(tgz)
	})
	return mux
}

// TestRealClientNpmInstall runs `npm install` in a project that depends on
// a package of a fake registry over HTTPS, under the default file system
// view: node_modules and the lock file land in the workspace, npm's cache
// in the run's copy-on-write HOME, and nothing in the real HOME.
func TestRealClientNpmInstall(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "npm", "node")
	d := newClientDirs(t)
	registry := "https://remote.test:" + serveRemoteTLS(t, w, npmRegistryHandler(t)) + "/"
	pkg := `{"name":"sgtest-project","version":"1.0.0","private":true,"dependencies":{"sgtest-hello":"1.0.0"}}` + "\n"
	if err := os.WriteFile(filepath.Join(d.project, "package.json"), []byte(pkg), 0o644); err != nil {
		t.Fatal(err)
	}

	script := `set -e
npm install --registry "$2" --cafile "$1" --no-audit --no-fund --no-update-notifier --loglevel=warn
node -e 'console.log(require("sgtest-hello").greeting)'
test -d "$HOME/.npm/_cacache" && echo NPM-CACHE-IN-RUN-HOME
echo NPM-OK`
	o := d.run(t, w, []string{"--allow", "remote.test"}, "/bin/sh", "-c", script, "sh", w.caFile, registry)
	wantOutput(t, o, "sgtest npm package", "NPM-CACHE-IN-RUN-HOME", "NPM-OK")
	wantFile(t, filepath.Join(d.project, "node_modules", "sgtest-hello", "index.js"), "sgtest npm package")
	wantFile(t, filepath.Join(d.project, "package-lock.json"), registry+"sgtest-hello/-/sgtest-hello-1.0.0.tgz")
	d.homeUnchanged(t)
}

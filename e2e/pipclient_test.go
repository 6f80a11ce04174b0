//go:build linux

package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
)

// pyWheel is the file name of the wheel the fake index serves.
const pyWheel = "sgtesthello-1.0-py3-none-any.whl"

// pythonWheel builds a tiny pure-Python wheel by hand: one module, the
// dist-info METADATA and WHEEL files, and a RECORD of them all.
func pythonWheel(t *testing.T) []byte {
	t.Helper()
	info := "sgtesthello-1.0.dist-info/"
	files := []struct{ name, body string }{
		{"sgtesthello.py", "GREETING = 'sgtest python wheel'\n"},
		{info + "METADATA", "Metadata-Version: 2.1\nName: sgtesthello\nVersion: 1.0\n"},
		{info + "WHEEL", "Wheel-Version: 1.0\nGenerator: sgtest\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf, record bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
		writeZipFile(t, zw, f.name, f.body)
	}
	record.WriteString(info + "RECORD,,\n")
	writeZipFile(t, zw, info+"RECORD", record.String())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeZipFile adds one file to a zip archive.
func writeZipFile(t *testing.T, zw *zip.Writer, name, body string) {
	t.Helper()
	f, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
}

// pipIndexHandler serves a PEP 503 simple index with the one wheel.
func pipIndexHandler(t *testing.T) http.Handler {
	whl := pythonWheel(t)
	sum := sha256.Sum256(whl)
	mux := http.NewServeMux()
	mux.HandleFunc("/simple/sgtesthello/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<!DOCTYPE html><html><body><a href=\"/files/%s#sha256=%s\">%s</a></body></html>\n", pyWheel, hex.EncodeToString(sum[:]), pyWheel)
	})
	mux.HandleFunc("/files/"+pyWheel, func(w http.ResponseWriter, r *http.Request) {
		// Cacheable, like a real index's files: pip then keeps it in ~/.cache/pip.
		w.Header().Set("Cache-Control", "max-age=3600, public")
		_, _ = w.Write(whl)
	})
	return mux
}

// TestRealClientPipInstall runs `pip install --target` from a fake simple
// index over HTTPS under the default file system view: the package lands in
// the workspace and imports, pip's cache is written in the run's
// copy-on-write HOME, and nothing in the real HOME.
func TestRealClientPipInstall(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "python3")
	hostRun(t, t.TempDir(), "python3", "-m", "pip", "--version")
	d := newClientDirs(t)
	port := serveRemoteTLS(t, w, pipIndexHandler(t))

	script := `set -e
python3 -m pip install --no-input --disable-pip-version-check --cert "$1" --index-url "https://remote.test:$2/simple/" --target pylib sgtesthello
PYTHONPATH=pylib python3 -c 'import sgtesthello; print(sgtesthello.GREETING)'
test -d "$HOME/.cache/pip" && echo PIP-CACHE-IN-RUN-HOME
echo PIP-OK`
	o := d.run(t, w, []string{"--allow", "remote.test"}, "/bin/sh", "-c", script, "sh", w.caFile, port)
	wantOutput(t, o, "sgtest python wheel", "PIP-CACHE-IN-RUN-HOME", "PIP-OK")
	wantFile(t, filepath.Join(d.project, "pylib", "sgtesthello.py"), "sgtest python wheel")
	d.homeUnchanged(t)
}

//go:build linux

package e2e

import (
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"testing"
)

// gitHTTPBackend is where Debian's git keeps its smart HTTP server.
const gitHTTPBackend = "/usr/lib/git-core/git-http-backend"

// newBareRepo makes a bare repository repo.git under dir holding one commit
// with hello.txt saying content, and returns the repository's path.
func newBareRepo(t *testing.T, dir, content string) string {
	t.Helper()
	work := filepath.Join(dir, "work")
	bare := filepath.Join(dir, "repo.git")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	id := []string{"-c", "user.name=sgtest", "-c", "user.email=sgtest@example.test", "-c", "init.defaultBranch=main"}
	hostRun(t, work, append([]string{"git"}, append(id, "init", "-q")...)...)
	hostRun(t, work, "git", "add", "hello.txt")
	hostRun(t, work, append([]string{"git"}, append(id, "commit", "-q", "-m", "sgtest")...)...)
	hostRun(t, dir, "git", "clone", "-q", "--bare", work, bare)
	return bare
}

// TestRealClientGitHTTPS clones a repository over smart HTTP with TLS (git
// http-backend behind a CGI handler in the remote) under the default file
// system view, through sandgate's proxy: the clone lands in the workspace,
// the real HOME is untouched.
func TestRealClientGitHTTPS(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "git", gitHTTPBackend)
	d := newClientDirs(t)
	served := t.TempDir()
	newBareRepo(t, served, "sgtest git over https\n")
	h := &cgi.Handler{
		Path: gitHTTPBackend,
		Root: "/git",
		Env:  []string{"GIT_PROJECT_ROOT=" + served, "GIT_HTTP_EXPORT_ALL=1"},
	}
	mux := http.NewServeMux()
	mux.Handle("/git/", h)
	port := serveRemoteTLS(t, w, mux)

	script := `set -e
git -c http.sslCAInfo="$1" clone -q "https://remote.test:$2/git/repo.git" clone
cat clone/hello.txt
echo GIT-HTTPS-OK`
	o := d.run(t, w, []string{"--allow", "remote.test"}, "/bin/sh", "-c", script, "sh", w.caFile, port)
	wantOutput(t, o, "sgtest git over https", "GIT-HTTPS-OK")
	wantFile(t, filepath.Join(d.project, "clone", "hello.txt"), "sgtest git over https")
	d.homeUnchanged(t)
}

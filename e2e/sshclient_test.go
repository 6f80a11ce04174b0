//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sshdBin is Debian's OpenSSH server (package openssh-server).
const sshdBin = "/usr/sbin/sshd"

// sshdPrivsepDir is the directory Debian's sshd chroots its unprivileged
// child into; it must exist.
const sshdPrivsepDir = "/run/sshd"

// lockedBuffer is a bytes.Buffer safe for a process to write while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startSSHD starts an OpenSSH server in the remote on a free port of its
// service addresses, v4 and v6, with a fresh host key, accepting only the
// public key in authorizedKeys (for root: the test's git commands run on
// the server as root). It returns the port and the host key line for a
// known_hosts file. The server is stopped at the end of the test.
func startSSHD(t *testing.T, w *world, dir, authorizedKeys string) (port, hostKey string) {
	t.Helper()
	if _, err := os.Stat(sshdPrivsepDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(sshdPrivsepDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(sshdPrivsepDir) })
	}
	keyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	hostRun(t, dir, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile)
	pub, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// A free port, found by listening on it once in the remote.
	err = w.remote.Do(func() error {
		l, err := net.Listen("tcp", net.JoinHostPort(remoteV4, "0"))
		if err != nil {
			return err
		}
		_, port, _ = net.SplitHostPort(l.Addr().String())
		return l.Close()
	})
	if err != nil {
		t.Fatalf("finding a free port in the remote: %v", err)
	}
	cfg := strings.Join([]string{
		"Port " + port,
		"ListenAddress " + remoteV4,
		"ListenAddress " + remoteV6,
		"HostKey " + keyFile,
		"AuthorizedKeysFile " + authorizedKeys,
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PidFile none",
		"LogLevel VERBOSE",
	}, "\n") + "\n"
	cfgFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd := exec.Command(sshdBin, "-D", "-e", "-f", cfgFile)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	wait, err := w.remote.Start(cmd)
	if err != nil {
		t.Fatalf("starting sshd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = wait()
		t.Logf("sshd log:\n%s", logs.String())
	})
	// Wait until it accepts connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := w.remote.Do(func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(remoteV4, port), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not accept connections: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	f := strings.Fields(string(pub))
	return port, "[remote.test]:" + port + " " + f[0] + " " + f[1]
}

// TestRealClientGitSSH clones a repository over ssh (OpenSSH's sshd in the
// remote, git's ssh through sandgate's $GIT_SSH_COMMAND) under the default
// file system view, with a key in the test HOME's ~/.ssh. Without --unhide
// the key (and known_hosts) is hidden and the clone fails; with --unhide for the key and
// known_hosts it works, lands in the workspace, and the real HOME (its
// ~/.ssh included) is unchanged.
func TestRealClientGitSSH(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	needTools(t, "git", "ssh", "ssh-keygen", sshdBin)
	d := newClientDirs(t)
	served := t.TempDir()
	bare := newBareRepo(t, served, "sgtest git over ssh\n")

	sshDir := filepath.Join(d.home, ".ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(sshDir, "id_ed25519")
	hostRun(t, served, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sgtest", "-f", key)
	port, hostKey := startSSHD(t, w, served, key+".pub")
	knownHosts := filepath.Join(sshDir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(hostKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.before = snapshot(t, d.home)

	// OpenSSH finds ~/.ssh through the password database, not $HOME (root's
	// is /root): the test HOME's files are named explicitly.
	script := `export GIT_SSH_COMMAND="$GIT_SSH_COMMAND -F /dev/null -o BatchMode=yes -o ConnectTimeout=10 -o IdentitiesOnly=yes -i $HOME/.ssh/id_ed25519 -o UserKnownHostsFile=$HOME/.ssh/known_hosts"
git clone -q "ssh://root@remote.test:$1$2" "$3" && cat "$3/hello.txt" && echo GIT-SSH-OK`
	flags := []string{"--allow", "remote.test"}

	// Hidden by default: neither the key nor known_hosts can be read.
	o := d.run(t, w, flags, "/bin/sh", "-c", script, "sh", port, bare, "hidden")
	if o.code == 0 || strings.Contains(o.stdout, "GIT-SSH-OK") {
		t.Errorf("git over ssh succeeded with ~/.ssh hidden (exit %d)", o.code)
	}
	if !strings.Contains(o.stderr, "id_ed25519 not accessible") {
		t.Errorf("ssh did not find the key hidden:\n%s", o.stderr)
	}

	o = d.run(t, w, append(flags, "--unhide", key, "--unhide", knownHosts),
		"/bin/sh", "-c", script, "sh", port, bare, "clone")
	wantOutput(t, o, "sgtest git over ssh", "GIT-SSH-OK")
	wantFile(t, filepath.Join(d.project, "clone", "hello.txt"), "sgtest git over ssh")
	if _, err := os.Stat(filepath.Join(d.project, "hidden")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused clone left %s behind (stat: %v)", filepath.Join(d.project, "hidden"), err)
	}
	d.homeUnchanged(t)
}

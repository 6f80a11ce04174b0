//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// unixConnectHelper is the "unixconnect" helper: it connects a unix stream
// socket to each of its arguments ("@NAME": abstract; relative: from its
// working directory) and prints the outcome, then tries the other ways
// to a unix address the by-path rule closes, and a TCP connect.
func unixConnectHelper(args []string) int {
	for _, a := range args {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: a})
			unix.Close(fd)
		}
		fmt.Printf("connect %s %s\n", a, errName(err))
	}
	// The first address once more, from a thread that is not the
	// process's main thread (the supervisor is told the thread).
	runtime.LockOSThread()
	done := make(chan string)
	go func() {
		runtime.LockOSThread() // another thread: this one is taken
		if unix.Gettid() == unix.Getpid() {
			done <- "on the main thread"
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil && len(args) > 0 {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: args[0]})
			unix.Close(fd)
		}
		done <- errName(err)
	}()
	fmt.Printf("connect-from-thread %s\n", <-done)
	fmt.Printf("unix-dgram %s\n", errName(closeFD(unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0))))
	fmt.Printf("unix-seqpacket %s\n", errName(closeFD(unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0))))
	pair := func(typ int) error {
		fds, err := unix.Socketpair(unix.AF_UNIX, typ, 0)
		if err == nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
		}
		return err
	}
	fmt.Printf("socketpair-stream %s\n", errName(pair(unix.SOCK_STREAM)))
	fmt.Printf("socketpair-dgram %s\n", errName(pair(unix.SOCK_DGRAM)))
	// A TCP connect is passed on: nothing listens on the sandbox's
	// loopback at port 1, and the kernel says so.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: 1, Addr: [4]byte{127, 0, 0, 1}})
		unix.Close(fd)
	}
	fmt.Printf("tcp-loopback %s\n", errName(err))
	// A filter of its own with a listener would get the notifications
	// first (and could let the kernel go on with them).
	allow := []unix.SockFilter{{Code: 0x06, K: unix.SECCOMP_RET_ALLOW}} // BPF_RET|BPF_K
	prog := unix.SockFprog{Len: 1, Filter: &allow[0]}
	lfd, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&prog)))
	if e == 0 {
		unix.Close(int(lfd))
		fmt.Println("seccomp-listener ok")
	} else {
		fmt.Printf("seccomp-listener %s\n", errName(e))
	}
	return 0
}

// sshAgent starts an ssh-agent listening at dir/agent.sock holding a new
// test key, and stops it when the test ends. It returns the socket's path.
func sshAgent(t *testing.T, dir string) string {
	t.Helper()
	for _, tool := range []string{"ssh-agent", "ssh-add", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (openssh-client): %v", tool, err)
		}
	}
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("starting ssh-agent: %v", err)
	}
	t.Cleanup(func() {
		agent.Process.Kill()
		agent.Wait()
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			t.Fatal("ssh-agent did not create its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	key := filepath.Join(dir, "id_test")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sgtest-key", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	return sock
}

// sshAddThrough runs ssh-add -l with spec (Args, Env and UnixSockets
// replaced) and the agent's socket sock allowed: it must list the test key;
// through other, a socket that is not allowed, it must not.
func sshAddThrough(t *testing.T, spec Spec, sock, other string) {
	t.Helper()
	spec.Args = []string{"ssh-add", "-l"}
	spec.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	spec.UnixSockets = []string{sock}
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 || !strings.Contains(o.stdout, "sgtest-key (ED25519)") {
		t.Fatalf("ssh-add -l with the agent's socket allowed: %+v %v stdout %q stderr %q", o.res, o.err, o.stdout, o.stderr)
	}
	// The same agent through a socket that is not allowed: refused.
	spec.Env = append(os.Environ(), "SSH_AUTH_SOCK="+other)
	o = sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode == 0 || strings.Contains(o.stdout, "sgtest-key") {
		t.Fatalf("ssh-add -l through a socket that is not allowed: %+v %v stdout %q stderr %q", o.res, o.err, o.stdout, o.stderr)
	}
}

// TestUnixSocketByPath: with UnixSockets (--allow-unix-socket) the command
// reaches the ssh-agent it was given, and no other unix socket.
func TestUnixSocketByPath(t *testing.T) {
	dir := t.TempDir()
	sock := sshAgent(t, dir)
	other := filepath.Join(dir, "other.sock")
	unixListener(t, other)
	abstract := "@sgtest-" + randHex(4)
	unixListener(t, abstract)

	sshAddThrough(t, Spec{Network: NetworkNone}, sock, other)

	// An allowed socket nobody may write to: the init connects without
	// capabilities (no CAP_DAC_OVERRIDE lent to the command).
	shut := filepath.Join(dir, "shut.sock")
	unixListener(t, shut)
	if err := os.Chmod(shut, 0); err != nil {
		t.Fatal(err)
	}

	spec := helperSpec("unixconnect", sock, "agent.sock", other, "other.sock", abstract, dir, shut)
	spec.Network = NetworkNone
	spec.Dir = dir
	spec.UnixSockets = []string{sock, shut}
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout,
		"connect "+sock+" ok\n", "connect agent.sock ok\n",
		"connect "+other+" EACCES\n", "connect other.sock EACCES\n",
		"connect "+abstract+" EACCES\n", "connect "+dir+" EACCES\n", "connect "+shut+" EACCES\n",
		"unix-dgram EPERM\n", "unix-seqpacket ok\n",
		"socketpair-stream ok\n", "socketpair-dgram EPERM\n",
		"tcp-loopback ECONNREFUSED\n", "seccomp-listener EPERM\n", "connect-from-thread ok\n")

	// The wide option still allows every unix socket, whatever the list.
	spec.AllowUnixSockets = true
	o = sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout, "connect "+sock+" ok\n", "connect "+other+" ok\n", "unix-dgram ok\n", "socketpair-dgram ok\n")
}

// TestUnixSocketByPathNotASocket: an allowed path that is no socket stops
// the run before the command starts.
func TestUnixSocketByPathNotASocket(t *testing.T) {
	f := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := helperSpec("unixconnect")
	spec.Network = NetworkNone
	spec.UnixSockets = []string{f}
	o := runNoCheck(spec)
	if o.err == nil || !strings.Contains(o.err.Error(), "not a socket") || strings.Contains(o.stdout, "unix-dgram") {
		t.Fatalf("Run with a plain file as the allowed socket: %+v %v stdout %q", o.res, o.err, o.stdout)
	}
}

// testUnixSocketByPath: on the identity backend too, UnixSockets lets the
// command (the sandbox user) reach a root ssh-agent whose socket lies in a
// directory only root can enter, and no other unix socket; the init
// connects as uid 0 without capabilities (a socket of mode 0 stays shut).
func (w *idWorld) testUnixSocketByPath(t *testing.T) {
	dir := t.TempDir() // root's, mode 0700: the sandbox user cannot enter it
	sock := sshAgent(t, dir)
	other := filepath.Join(dir, "other.sock")
	unixListener(t, other)
	abstract := "@sgtest-" + randHex(4)
	unixListener(t, abstract)

	sshAddThrough(t, w.spec("ssh-add"), sock, other)

	shut := filepath.Join(dir, "shut.sock")
	unixListener(t, shut)
	if err := os.Chmod(shut, 0); err != nil {
		t.Fatal(err)
	}
	spec := w.spec("unixconnect", sock, other, abstract, dir, shut)
	spec.UnixSockets = []string{sock, shut}
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("identity Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout,
		"connect "+sock+" ok\n", "connect "+other+" EACCES\n",
		"connect "+abstract+" EACCES\n", "connect "+dir+" EACCES\n", "connect "+shut+" EACCES\n",
		"unix-dgram EPERM\n", "socketpair-dgram EPERM\n", "seccomp-listener EPERM\n", "connect-from-thread ok\n")
}

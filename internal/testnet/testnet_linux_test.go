//go:build linux

package testnet

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nsInode is the inode of the calling thread's network namespace.
func nsInode() (uint64, error) {
	var st syscall.Stat_t
	err := syscall.Stat("/proc/thread-self/ns/net", &st)
	return st.Ino, err
}

func TestNamespaces(t *testing.T) {
	named, anon := New(t), NewAnonymous(t)
	if _, err := os.Stat("/run/netns/" + named.Name); err != nil || !strings.HasPrefix(named.Name, Prefix) {
		t.Fatalf("named namespace %q: %v", named.Name, err)
	}
	if anon.Name != "" {
		t.Errorf("anonymous namespace named %q", anon.Name)
	}
	own, err := nsInode()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{own: true}
	for _, n := range []*NS{named, anon} {
		var ino uint64
		if err := n.Do(func() (err error) { ino, err = nsInode(); return err }); err != nil {
			t.Fatal(err)
		}
		if seen[ino] {
			t.Errorf("%s is not a namespace of its own (inode %d)", n, ino)
		}
		seen[ino] = true
		out, err := n.IP("-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, "lo:") || !strings.Contains(out, ",UP") {
			t.Errorf("%s has links %q, want only lo, up", n, out)
		}
	}

	// Closing a named namespace removes its name.
	extra, err := Create(UniqueName(8))
	if err != nil {
		t.Fatal(err)
	}
	if err := extra.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(extra.Path); !os.IsNotExist(err) {
		t.Errorf("after Close, %s: %v", extra.Path, err)
	}
}

// TestPair connects from the host to the remote over the veth pair, on
// both families.
func TestPair(t *testing.T) {
	host, remote := NewPair(t)
	var ln4, ln6 net.Listener
	if err := remote.Do(func() (err error) {
		if ln4, err = net.Listen("tcp4", RemoteV4+":0"); err != nil {
			return err
		}
		ln6, err = net.Listen("tcp6", "["+RemoteV6+"]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	defer ln6.Close()
	for _, ln := range []net.Listener{ln4, ln6} {
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		if err := host.Do(func() error {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}); err != nil {
			t.Errorf("host to %s: %v", ln.Addr(), err)
		}
	}
}

// TestStartKeepsPdeathsigChildren starts a child with Pdeathsig in a
// namespace: it runs there and is not killed when Start returns.
func TestStartKeepsPdeathsigChildren(t *testing.T) {
	n := NewAnonymous(t)
	cmd := exec.Command("sh", "-c", "sleep 0.5; readlink /proc/self/ns/net")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout = &out
	wait, err := n.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("child in %s: %v", n, err)
	}
	var ino uint64
	if err := n.Do(func() (err error) { ino, err = nsInode(); return err }); err != nil {
		t.Fatal(err)
	}
	if want := "net:[" + strconv.FormatUint(ino, 10) + "]"; strings.TrimSpace(out.String()) != want {
		t.Errorf("child ran in %q, want %q", strings.TrimSpace(out.String()), want)
	}
}

//go:build linux

package fsview

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBindContent mounts a file over another in a mount namespace of a
// thread of the test's own: the thread sees the new content, read-only,
// and the host's file is unchanged.
func TestBindContent(t *testing.T) {
	requireRoot(t)
	dir, err := os.MkdirTemp("/var/lib", "sandgate-fsview-content-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	target := filepath.Join(dir, "hosts")
	if err := os.WriteFile(target, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		content  string
		writeErr error
		err      error
	}
	done := make(chan result)
	go func() {
		// The thread is not unlocked: it exits with the goroutine, and
		// its mount namespace with it.
		runtime.LockOSThread()
		var r result
		defer func() { done <- r }()
		if r.err = unix.Unshare(unix.CLONE_NEWNS); r.err != nil {
			return
		}
		if r.err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); r.err != nil {
			return
		}
		if r.err = BindContent(target, []byte("sandbox\n")); r.err != nil {
			return
		}
		b, err := os.ReadFile(target)
		r.content, r.err = string(b), err
		r.writeErr = os.WriteFile(target, []byte("changed\n"), 0o644)
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.content != "sandbox\n" {
		t.Errorf("the thread reads %q, want the new content", r.content)
	}
	if !errors.Is(r.writeErr, unix.EROFS) {
		t.Errorf("writing the new file: %v, want EROFS", r.writeErr)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "host\n" {
		t.Errorf("the host's file: %q %v", b, err)
	}
}

package fsview

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOSFSReadFileRefusesFIFO: a FIFO where a configuration was is
// refused at once, not waited on for a writer.
func TestOSFSReadFileRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := OSFS{}.ReadFile(p)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errNotRegular) {
			t.Fatalf("ReadFile(FIFO) = %v, want %v", err, errNotRegular)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile(FIFO) waited for a writer")
	}
}

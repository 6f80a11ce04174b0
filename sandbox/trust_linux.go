//go:build linux

package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
	"github.com/sandgate/sandgate/trustenv"
)

// trustSupported says whether Run can give CMD Spec.TrustPEM here.
const trustSupported = true

// trustRun is what one run makes of Spec.TrustPEM (package trustenv): a
// directory of sandgate's own (mode 0755, its files 0444, removed at the
// end) holding the system bundles with the extra certificates, the
// extra certificates alone and the JVM trust store. The init binds them
// read-only over the host's system bundles and trust stores that exist
// (initproto.Config.Replace, applied before the file system view), and
// the directory read-only over itself; the view keeps the directory
// visible at its own path and never writable, and CMD's environment
// names the files there. Only certificates are
// ever written: the CA's key is not sandgate's run's to give.
type trustRun struct {
	dir     string
	env     []string
	replace []initproto.ReplaceFile
}

// newTrustRun makes the run's trust files for CMD's environment env (nil,
// nil without spec.TrustPEM). Notes go to spec.Notify.
func newTrustRun(spec Spec, env []string) (_ *trustRun, err error) {
	if len(spec.TrustPEM) == 0 {
		return nil, nil
	}
	t := &trustRun{}
	defer func() {
		if err != nil {
			t.remove()
		}
	}()
	if t.dir, err = os.MkdirTemp("", "sandgate-trust-"); err != nil {
		return nil, fmt.Errorf("the certificates CMD must trust: %w", err)
	}
	// The path CMD is given must be the one the view keeps.
	if t.dir, err = filepath.EvalSymlinks(t.dir); err != nil {
		return nil, fmt.Errorf("the certificates CMD must trust: %w", err)
	}
	// Readable by the identity backend's sandbox user; written by nobody
	// but sandgate.
	if err := os.Chmod(t.dir, 0o755); err != nil {
		return nil, fmt.Errorf("the certificates CMD must trust: %w", err)
	}
	wd := runDir(spec)
	res, err := trustenv.Build(trustenv.Input{Extra: spec.TrustPEM, Env: env, Dir: t.dir,
		ReadFile: func(name string) ([]byte, error) { return readTrustFile(wd, name) }})
	if err != nil {
		return nil, err
	}
	// The directory read-only over itself first: without a view (--fs
	// host) CMD, the caller's uid on the netns backend, owns it.
	t.replace = []initproto.ReplaceFile{{Source: t.dir, Target: t.dir}}
	for _, f := range res.Files {
		src := filepath.Join(t.dir, f.Name)
		if err := os.WriteFile(src, f.Data, 0o444); err != nil {
			return nil, fmt.Errorf("the certificates CMD must trust: %w", err)
		}
		for _, target := range f.Targets {
			t.replace = append(t.replace, initproto.ReplaceFile{Source: src, Target: target})
		}
	}
	for _, n := range res.Notes {
		spec.notifier()(n)
	}
	t.env = res.Env
	return t, nil
}

// maxTrustFile bounds a bundle sandgate reads (the host's are about
// 200 KiB).
const maxTrustFile = 16 << 20

// readTrustFile reads a system bundle or a file a caller's variable names
// (relative: from CMD's directory wd): a regular file of at most
// maxTrustFile bytes, so that a FIFO or a device named by a variable
// cannot hold the run up.
func readTrustFile(wd, name string) ([]byte, error) {
	if !filepath.IsAbs(name) && wd != "" {
		name = filepath.Join(wd, name)
	}
	// Non-blocking: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if fi.Size() > maxTrustFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxTrustFile)
	}
	return io.ReadAll(io.LimitReader(f, maxTrustFile))
}

// environ is CMD's environment: env, with the trust variables when the
// run has them.
func (t *trustRun) environ(env []string) []string {
	if t == nil {
		return env
	}
	return t.env
}

// view returns pr with the trust directory visible and never writable
// (pr itself when there is nothing to add).
func (t *trustRun) view(pr *fsview.Profile) *fsview.Profile {
	if t == nil || pr == nil || pr.Mode == fsview.ModeHost {
		return pr
	}
	c := *pr
	c.Visible = append(slices.Clone(pr.Visible), t.dir)
	c.Protect = append(slices.Clone(pr.Protect), t.dir)
	return &c
}

// binds are the init's read-only binds over the system paths.
func (t *trustRun) binds() []initproto.ReplaceFile {
	if t == nil {
		return nil
	}
	return t.replace
}

// remove deletes the run's trust files.
func (t *trustRun) remove() {
	if t == nil || t.dir == "" {
		return
	}
	_ = os.RemoveAll(t.dir)
}

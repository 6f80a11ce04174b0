//go:build linux

package sandbox

import (
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/dirgrant"
	"github.com/sandgate/sandgate/setup"
)

func (w *idWorld) testPorts(t *testing.T) {
	// Two runs at once take different ports of the reserved set.
	gatePath, open := w.gate()
	var outs []*syncBuffer
	var waits []func() outcome
	for i := 0; i < 2; i++ {
		spec := w.spec("id-wait", gatePath)
		spec.Network, spec.Gate = NetworkProxy, denyAllGate()
		out, wait := background(t, spec)
		outs, waits = append(outs, out), append(waits, wait)
	}
	ports := map[string]bool{}
	for _, out := range outs {
		out.waitFor(t, "\n")
		for _, m := range regexpAll(`127\.0\.0\.1:(\d+)`, out.String()) {
			ports[m] = true
		}
	}
	open()
	for _, wait := range waits {
		if o := wait(); o.err != nil || o.res.ExitCode != 0 {
			t.Errorf("concurrent run: %+v %v %s %s", o.res, o.err, o.stdout, o.stderr)
		}
	}
	if len(ports) != 4 {
		t.Errorf("two concurrent runs used ports %v, want four different ones", ports)
	}
	for p := range ports {
		if n, _ := strconv.Atoi(p); n < setup.DefaultPortBase || n >= setup.DefaultPortBase+setup.DefaultPortCount {
			t.Errorf("port %s is not one of the reserved ports", p)
		}
	}

	// All but one reserved port taken: the run does not start.
	var held []net.Listener
	for _, p := range setup.DefaultPorts()[1:] {
		ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(int(p)))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
	}
	defer closeListeners(held)
	count := filepath.Join(w.gates, "count-"+randHex(4))
	spec := w.spec("id-count", count)
	spec.Network, spec.Gate = NetworkProxy, denyAllGate()
	o := runNoCheck(spec)
	if !errors.Is(o.err, ErrUnavailable) {
		t.Fatalf("ports exhausted: %+v %v", o.res, o.err)
	}
	mustContain(t, o.err.Error(), "all 16 reserved proxy ports (47100-47115) are in use", "`sandgate setup --ports 47100-47131`")
	if _, err := os.Stat(count); err == nil {
		t.Error("CMD ran although no ports were free")
	}
}

func (w *idWorld) testDirGrant(t *testing.T) {
	checkGranted := func(out string) {
		t.Helper()
		m := regexpAll(`acl ([0-9a-f]+)\n`, out)
		if len(m) != 1 {
			t.Fatalf("no ACL seen by CMD:\n%s", out)
		}
		raw, _ := hex.DecodeString(m[0])
		a, err := dirgrant.ParseACL(raw)
		if err != nil || !a.Allows(0, 0, uint32(w.offUID), uint32(w.gid), dirgrant.PermRWX) {
			t.Errorf("CMD's directory ACL %v (%v) does not grant the sandbox group rwx", a, err)
		}
		mustContain(t, out, "touch ok\n")
	}
	assertRevoked := func() {
		t.Helper()
		if x := getXattr(t, w.work); x != nil {
			t.Errorf("grant still on %s after the run: %x", w.work, x)
		}
		fi, err := os.Stat(w.work)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o700 {
			t.Errorf("mode of %s after the run: %o, want 700", w.work, m)
		}
	}
	o := sandboxRun(t, w.spec("id-grant"))
	checkGranted(o.stdout)
	assertRevoked()

	// Two runs in one directory: the first to end leaves the grant to the
	// other.
	gatePath, open := w.gate()
	out, wait := background(t, w.spec("id-wait", gatePath, "after-the-other-run"))
	out.waitFor(t, "ports")
	o = sandboxRun(t, w.spec("id-grant"))
	checkGranted(o.stdout)
	if getXattr(t, w.work) == nil {
		t.Error("the grant went while another run still used the directory")
	}
	open()
	if o := wait(); !strings.Contains(o.stdout, "touch after-the-other-run ok\n") {
		t.Errorf("the longer run lost access: %+v %v %s", o.res, o.err, o.stdout)
	}
	assertRevoked()

	// --keep-dir-grant.
	spec := w.spec("id-grant")
	spec.KeepDirGrant = true
	o = sandboxRun(t, spec)
	checkGranted(o.stdout)
	if getXattr(t, w.work) == nil {
		t.Error("the kept grant is gone")
	}
	if err := unix.Removexattr(w.work, dirgrant.XattrName); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(w.work, 0o700); err != nil {
		t.Fatal(err)
	}

	// A parent the sandbox user cannot search: refused, naming it; the
	// grant on the directory itself is taken back.
	shut := filepath.Join(w.base, "shut")
	inner := filepath.Join(shut, "inner")
	if err := os.MkdirAll(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shut, 0o700); err != nil {
		t.Fatal(err)
	}
	spec = w.spec("id-grant")
	spec.Dir = inner
	o = runNoCheck(spec)
	if o.err == nil || !strings.Contains(o.err.Error(), shut+" is not searchable by it") ||
		!strings.Contains(o.err.Error(), "setfacl -m g:"+w.names[2]+":x "+shut) {
		t.Errorf("unreachable working directory: %+v %v %s", o.res, o.err, o.stdout)
	}
	if x := getXattr(t, inner); x != nil {
		t.Errorf("grant left on %s after a refused run: %x", inner, x)
	}
}

// getXattr returns dir's access ACL attribute (nil: none).
func getXattr(t *testing.T, dir string) []byte {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Getxattr(dir, dirgrant.XattrName, buf)
	if errors.Is(err, unix.ENODATA) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

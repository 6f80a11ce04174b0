//go:build linux

package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func (w *idWorld) testLockedDown(t *testing.T) {
	for _, network := range []Network{NetworkProxy, NetworkNone} {
		spec := w.spec("id-status")
		spec.Network, spec.Gate = network, denyAllGate()
		o := sandboxRun(t, spec)
		if o.err != nil || o.res.ExitCode != 0 {
			t.Fatalf("%v: %+v %v %s", network, o.res, o.err, o.stderr)
		}
		id := func(n int) string { return fmt.Sprintf("%d\t%d\t%d\t%d", n, n, n, n) }
		for field, want := range map[string]string{
			"Uid": id(w.offUID), "Gid": id(w.gid), "Groups": "",
			"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
			"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
			"NoNewPrivs": "1", "Seccomp": "2",
		} {
			if got := statusLine(o.stdout, field); got != want {
				t.Errorf("%v: %s = %q, want %q", network, field, got, want)
			}
		}
		mustContain(t, o.stdout, "getgroups [] <nil>", " ppid 1\n")
	}
}

// testProcess checks exit codes, signal forwarding and the terminal, as the
// netns backend's tests do.
func (w *idWorld) testProcess(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
	}{{[]string{"sh", "-c", "exit 3"}, 3}, {[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15}, {[]string{"sandgate-no-such-command"}, 127}} {
		spec := w.spec("")
		spec.Args = c.args
		if o := sandboxRun(t, spec); o.err != nil || o.res.ExitCode != c.code {
			t.Errorf("%q: %+v %v %s", c.args, o.res, o.err, o.stderr)
		}
	}

	// SIGTERM to the process running Run reaches the command.
	checkSIGTERMReachesCMD(t, w.spec("waitsig"))

	// A terminal: the command gets a pty of its own, owns its session,
	// reads typed lines and gets Ctrl-C.
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	term := &syncBuffer{}
	go io.Copy(term, master)
	spec := w.spec("tty")
	spec.Stdin, spec.Stdout, spec.Stderr = slave, slave, slave
	_, wait := background(t, spec)
	term.waitFor(t, "ready")
	master.Write([]byte("typed line\r"))
	term.waitFor(t, `read "typed line"`)
	master.Write([]byte{3})
	term.waitFor(t, "got interrupt")
	o := wait()
	if o.err != nil || o.res.ExitCode != 5 {
		t.Errorf("terminal session: %+v %v", o.res, o.err)
	}
	mustContain(t, term.String(), "tty /dev/pts/", "session-leader true foreground true <nil>")
}

// testParentKilled: kill -9 of sandgate during an identity run leaves no
// process of the run, neither in its PID namespace nor of the offline user
// (whose uid the init's thread that starts CMD takes, which the kernel
// answers by clearing that thread's parent-death signal). The directory
// grant the killed run leaves is taken back by the next identity run,
// which runs elsewhere, and it says so.
func (w *idWorld) testParentKilled(t *testing.T) {
	cfg := w.helperConfig()
	cfg.Dir = w.work
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkNothingOutlivesSandgate(t, w.bin, append(os.Environ(), idConfigEnv+"="+string(raw)), w.offUID)
	if getXattr(t, w.work) == nil {
		t.Fatalf("the killed run left no grant on %s to repair", w.work)
	}

	elsewhere := filepath.Join(w.base, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	spec := w.spec("id-grant")
	spec.Dir = elsewhere
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("the next run: %+v %v %s", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout, "touch ok\n")
	want := "took back the sandbox group's access to " + w.work + ", granted by an identity run that did not end cleanly"
	if len(o.notes) != 1 || !strings.HasPrefix(o.notes[0], want) || !strings.HasSuffix(o.notes[0], ", restoring the directory's previous ACL") {
		t.Errorf("messages %q, want one: %q…", o.notes, want)
	}
	if x := getXattr(t, w.work); x != nil {
		t.Errorf("the leftover grant on %s is still there: %x", w.work, x)
	}
	if fi, err := os.Stat(w.work); err != nil {
		t.Error(err)
	} else if m := fi.Mode().Perm(); m != 0o700 {
		t.Errorf("mode of %s after the repair: %o, want 700", w.work, m)
	}
	if x := getXattr(t, elsewhere); x != nil {
		t.Errorf("the later run's own grant on %s stayed: %x", elsewhere, x)
	}
}

// testNothingOutlivesRun: when Run returns, no process of the run is left,
// not even for a moment: CMD leaves a child behind that ignores the usual
// signals, and right after Run returns nothing runs as the offline user
// (the world's uids are its own, so any such process would be the run's).
func (w *idWorld) testNothingOutlivesRun(t *testing.T) {
	for i := 0; i < 5; i++ {
		spec := w.spec("hang") // for "$0", the child
		spec.Args = []string{"sh", "-c", `trap "" HUP INT TERM; "$0" & echo started`, w.bin}
		o := sandboxRun(t, spec)
		left := runProcesses("none", w.offUID)
		if o.err != nil || o.res.ExitCode != 0 || o.stdout != "started\n" {
			t.Fatalf("run: %+v %v %q %q", o.res, o.err, o.stdout, o.stderr)
		}
		if len(left) != 0 {
			killAndReap(t, "none", w.offUID, map[int]bool{})
			t.Fatalf("processes of the run outlived Run: %v", left)
		}
	}
	// Ended on the init's report of CMD's end (files as its streams).
	for _, network := range []Network{NetworkNone, NetworkProxy} {
		spec := w.spec("")
		spec.Network, spec.Gate = network, denyAllGate()
		checkNoSurvivorsAtReturn(t, spec, w.offUID)
	}
}

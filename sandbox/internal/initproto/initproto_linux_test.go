//go:build linux

package initproto

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// statusPair returns the two ends of a status socket, as the sandbox parent makes
// it: the init's raw descriptor and the parent's *os.File.
func statusPair(t *testing.T) (int, *os.File) {
	t.Helper()
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := os.NewFile(uintptr(p[1]), "status")
	t.Cleanup(func() { unix.Close(p[0]); r.Close() })
	return p[0], r
}

// FuzzStatusProtocol checks the init's status report end to end over a
// status socket: what Send sends Recv returns unchanged (with
// the descriptors attached), and arbitrary datagrams are decoded or
// refused, never half-taken.
func FuzzStatusProtocol(f *testing.F) {
	f.Add(Started, "", false, 0, 40001, 40002, true, []byte(`{"kind":"started","http":1,"socks":2}`))
	f.Add(ExecError, "foo: command not found", false, 127, 0, 0, false, []byte(`{"kind":"exec-error","code":126}`))
	f.Add(SetupError, "sandbox init: <bad> \"config\"\n\u2028", true, 0, 0, 0, false, []byte(`{"kind":1}`))
	f.Add("", "\x00\xff", false, -1, -1, 1<<30, false, []byte(`null`))
	f.Add("x", "", false, 0, 0, 0, false, []byte{})
	f.Fuzz(func(t *testing.T, kind, msg string, unavailable bool, code, http, socks int, withFD bool, raw []byte) {
		st := Status{Kind: kind, Msg: msg, Unavailable: unavailable, Code: code, HTTPPort: http, SOCKSPort: socks}
		enc, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		// Large reports only slow the fuzzer down, and Send cuts
		// messages over MaxMsg (TestStatusLongMessage covers that).
		if len(enc) <= 16<<10 && len(msg) <= MaxMsg {
			w, r := statusPair(t)
			var fds []int
			if withFD {
				var pp [2]int
				if err := unix.Pipe2(pp[:], unix.O_CLOEXEC); err != nil {
					t.Fatal(err)
				}
				defer unix.Close(pp[0])
				defer unix.Close(pp[1])
				fds = []int{pp[0]}
			}
			if err := Send(w, st, fds...); err != nil {
				t.Fatalf("Send(%+v): %v", st, err)
			}
			got, files, ok, err := Recv(r)
			CloseAll(files)
			if err != nil || !ok {
				t.Fatalf("Recv after Send(%+v) = %+v, %v, %v", st, got, ok, err)
			}
			if len(files) != len(fds) {
				t.Fatalf("sent %d descriptors, received %d", len(fds), len(files))
			}
			want := st
			if !utf8.ValidString(kind) || !utf8.ValidString(msg) {
				// JSON carries text: invalid UTF-8 comes back as U+FFFD.
				json.Unmarshal(enc, &want)
			}
			if got != want {
				t.Fatalf("Send(%+v) then Recv = %+v", st, got)
			}
		}

		if len(raw) > 16<<10 {
			return
		}
		w, r := statusPair(t)
		if _, err := unix.Write(w, raw); err != nil {
			t.Fatalf("write: %v", err)
		}
		got, files, ok, err := Recv(r)
		CloseAll(files)
		if len(files) != 0 {
			t.Fatalf("Recv(%q) returned %d files, none sent", raw, len(files))
		}
		var want Status
		werr := json.Unmarshal(raw, &want)
		switch {
		case len(raw) == 0:
			// An empty datagram reads like a closed socket: no report.
			if ok || err != nil {
				t.Fatalf("Recv(empty) = %+v, %v, %v", got, ok, err)
			}
		case werr != nil:
			if ok || err == nil {
				t.Fatalf("Recv(%q) = %+v, %v, %v; want an error", raw, got, ok, err)
			}
		default:
			if !ok || err != nil || got != want {
				t.Fatalf("Recv(%q) = %+v, %v, %v; want %+v", raw, got, ok, err, want)
			}
		}
	})
}

// TestStatusLongMessage checks that a report whose message would not fit the
// receiver's buffer (even after JSON escaping) arrives cut, not garbled.
func TestStatusLongMessage(t *testing.T) {
	w, r := statusPair(t)
	msg := strings.Repeat("<", 70000) + ": command not found"
	if err := Send(w, Status{Kind: ExecError, Code: 127, Msg: msg}); err != nil {
		t.Fatal(err)
	}
	got, _, ok, err := Recv(r)
	if err != nil || !ok {
		t.Fatalf("Recv: ok %v, err %v", ok, err)
	}
	if got.Kind != ExecError || got.Code != 127 {
		t.Errorf("got %+v", got)
	}
	if !strings.HasPrefix(got.Msg, "<<<<") || !strings.HasSuffix(got.Msg, "…") || len(got.Msg) > MaxMsg+len("…") {
		t.Errorf("message of %d bytes not cut as expected", len(got.Msg))
	}
}

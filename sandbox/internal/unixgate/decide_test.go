package unixgate

import (
	"encoding/binary"
	"errors"
	"testing"
)

// sockaddr lays out a sockaddr with family fam and the bytes rest.
func sockaddr(fam uint16, rest string) []byte {
	b := make([]byte, 2, 2+len(rest))
	binary.NativeEndian.PutUint16(b, fam)
	return append(b, rest...)
}

func TestDecide(t *testing.T) {
	allowed := []string{"/tmp/ssh-x/agent.1", "/run/docker.sock"}
	cwd := func() (string, error) { return "/tmp/ssh-x", nil }
	tests := []struct {
		name  string
		sa    []byte
		want  Verdict
		index int
	}{
		{"inet", sockaddr(2, "\x00\x50\xc0\x00\x02\x01"), PassOn, 0},
		{"inet6", sockaddr(10, "\x00\x50"), PassOn, 0},
		{"too short", []byte{1}, Refused, 0},
		{"empty", nil, Refused, 0},
		{"allowed", sockaddr(afUnix, "/tmp/ssh-x/agent.1"), Allowed, 0},
		{"allowed with NUL", sockaddr(afUnix, "/run/docker.sock\x00junk"), Allowed, 1},
		{"allowed unclean", sockaddr(afUnix, "/run//x/../docker.sock"), Allowed, 1},
		{"allowed relative", sockaddr(afUnix, "agent.1"), Allowed, 0},
		{"relative elsewhere", sockaddr(afUnix, "../agent.1"), Refused, 0},
		{"other path", sockaddr(afUnix, "/run/other.sock"), Refused, 0},
		{"prefix of allowed", sockaddr(afUnix, "/run/docker.so"), Refused, 0},
		{"abstract", sockaddr(afUnix, "\x00/run/docker.sock"), Refused, 0},
		{"unnamed", sockaddr(afUnix, ""), Refused, 0},
	}
	for _, tt := range tests {
		d := Decide(tt.sa, cwd, allowed)
		if d.Verdict != tt.want || (d.Verdict == Allowed && d.Index != tt.index) {
			t.Errorf("%s: Decide = %+v, want verdict %d index %d", tt.name, d, tt.want, tt.index)
		}
		if d.Verdict == Refused && d.Reason == "" {
			t.Errorf("%s: refused without a reason", tt.name)
		}
	}
	noCwd := func() (string, error) { return "", errors.New("gone") }
	if d := Decide(sockaddr(afUnix, "agent.1"), noCwd, allowed); d.Verdict != Refused {
		t.Errorf("relative path with no working directory: %+v, want refused", d)
	}
}

// FuzzDecide: any address either passes on (not unix), is refused with a
// reason, or names exactly an allowed socket.
func FuzzDecide(f *testing.F) {
	f.Add(sockaddr(afUnix, "/a/s"), "/a")
	f.Add(sockaddr(afUnix, "s\x00x"), "/a")
	f.Add(sockaddr(afUnix, "\x00abs"), "/")
	f.Add(sockaddr(2, "xx"), "/")
	allowed := []string{"/a/s"}
	f.Fuzz(func(t *testing.T, sa []byte, dir string) {
		d := Decide(sa, func() (string, error) { return dir, nil }, allowed)
		switch d.Verdict {
		case PassOn:
			if len(sa) < 2 || binary.NativeEndian.Uint16(sa) == afUnix {
				t.Fatalf("unix or short address passed on: %q", sa)
			}
		case Refused:
			if d.Reason == "" {
				t.Fatal("refused without a reason")
			}
		case Allowed:
			if d.Index != 0 || len(sa) < 3 || sa[2] == 0 {
				t.Fatalf("allowed %q as %+v", sa, d)
			}
		}
	})
}

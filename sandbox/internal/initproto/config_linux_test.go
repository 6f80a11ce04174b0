//go:build linux

package initproto

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// configPair is a status socket pair: the parent's end as a file (as
// launch makes it, non-blocking) and the init's end as a descriptor.
func configPair(t *testing.T) (*os.File, int) {
	t.Helper()
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		t.Fatal(err)
	}
	parent := os.NewFile(uintptr(p[0]), "status")
	t.Cleanup(func() { parent.Close(); unix.Close(p[1]) })
	return parent, p[1]
}

func TestConfigOverStatusSocket(t *testing.T) {
	view := json.RawMessage(`{"mounts":[{"kind":"bind","src":"/w","dst":"/w"}]}`)
	for _, cfg := range []Config{
		{},
		{Network: NetNone, Dir: "/work", PTY: true},
		{Network: NetProxy, UnixSockets: []string{"/run/a.sock"}, Executable: "/usr/bin/sandgate", View: view,
			Transparent: &Transparent{SelfAddrs: []string{"198.18.0.1", "fd00::1"}},
			Replace:     []ReplaceFile{{Source: "/tmp/r/hosts", Target: "/etc/hosts"}}},
		{Network: NetFull, Identity: &Identity{UID: 4000, GID: 4000, User: "sandgate-offline", Group: "sandgate"}},
	} {
		parent, child := configPair(t)
		if err := SendConfig(parent, cfg); err != nil {
			t.Fatalf("SendConfig(%+v): %v", cfg, err)
		}
		got, cmd, err := ReadConfig(DeferredArgs([]string{"true", "x y"}), child)
		if err != nil {
			t.Fatalf("ReadConfig after SendConfig(%+v): %v", cfg, err)
		}
		if !reflect.DeepEqual(got, cfg) || !reflect.DeepEqual(cmd, []string{"true", "x y"}) {
			t.Errorf("sent %+v, read %+v and command %q", cfg, got, cmd)
		}
	}
}

func TestConfigOverStatusSocketErrors(t *testing.T) {
	// The parent gone before sending: ErrNoConfig, so the init ends quietly.
	parent, child := configPair(t)
	parent.Close()
	if _, _, err := ReadConfig(DeferredArgs([]string{"true"}), child); !errors.Is(err, ErrNoConfig) {
		t.Errorf("closed socket: %v, want ErrNoConfig", err)
	}
	// Not JSON.
	parent, child = configPair(t)
	if _, err := unix.Write(int(parent.Fd()), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadConfig(DeferredArgs([]string{"true"}), child); err == nil {
		t.Error("a message that is not JSON was accepted")
	}
	// Argv's own configuration still works (and needs no socket).
	args, err := Args(Config{Network: NetNone, Dir: "/d"}, []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, cmd, err := ReadConfig(args, -1)
	if err != nil || cfg.Network != NetNone || cfg.Dir != "/d" || len(cmd) != 1 {
		t.Errorf("ReadConfig(argv config) = %+v, %q, %v", cfg, cmd, err)
	}
	// Too large to send.
	big := Config{View: json.RawMessage(`"` + strings.Repeat("a", MaxConfig) + `"`)}
	if err := SendConfig(parent, big); err == nil {
		t.Error("SendConfig accepted a configuration over MaxConfig")
	}
}

// FuzzDecodeConfig: whatever arrives on the status socket, decoding never
// panics, and what it accepts encodes and decodes to itself.
func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(`{"net":0,"dir":"/w","view":{"a":1},"transparent":{"self":["198.18.0.1"]}}`))
	f.Add([]byte(`{"net":2,"identity":{"uid":1,"gid":2,"user":"u","group":"g"}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"view":"x"`))
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := DecodeConfig(raw)
		if err != nil {
			return
		}
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", cfg, err)
		}
		back, err := DecodeConfig(again)
		if err != nil {
			t.Fatalf("decoding the re-encoded %q: %v", again, err)
		}
		if !reflect.DeepEqual(normalize(back), normalize(cfg)) {
			t.Fatalf("%q decoded to %+v, re-encoded to %+v", raw, cfg, back)
		}
	})
}

// normalize makes a Config comparable after a JSON round trip: the view's
// raw JSON is compared compacted.
func normalize(c Config) Config {
	if len(c.View) > 0 {
		var v any
		if json.Unmarshal(c.View, &v) == nil {
			c.View, _ = json.Marshal(v)
		}
	}
	return c
}

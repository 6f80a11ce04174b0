//go:build linux

package initproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/sandgate/sandgate/internal/wire/wiretest"
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

// fullConfig is a configuration with every field set.
func fullConfig() Config {
	return Config{Network: NetFull, AllowUnix: true, UnixSockets: []string{"/run/a.sock", "/run/b.sock"},
		Dir: "/work", Executable: "/usr/bin/sandgate", PTY: true,
		Identity:    &Identity{UID: 4000, GID: 4001, User: "sandgate-offline", Group: "sandgate"},
		View:        []byte{0, 1, 0xff, 'v'},
		Transparent: &Transparent{SelfAddrs: []string{"198.18.0.1", "fd00::1"}},
		Replace:     []ReplaceFile{{Source: "/tmp/r/hosts", Target: "/etc/hosts", Transparent: true}, {Source: "/tmp/r/ca", Target: "/etc/ssl/ca.pem"}}}
}

// testConfigs are the configurations the round trips cover.
func testConfigs() []Config {
	return []Config{
		{},
		{Network: NetNone, Dir: "/work", PTY: true},
		{Network: NetProxy, UnixSockets: []string{}, View: []byte{}, Transparent: &Transparent{}, Replace: []ReplaceFile{}},
		{Network: NetProxy, UnixSockets: []string{"/run/a.sock"}, Executable: "/usr/bin/sandgate", View: []byte(`{"mounts":[]}`),
			Transparent: &Transparent{SelfAddrs: []string{"198.18.0.1", "fd00::1"}},
			Replace:     []ReplaceFile{{Source: "/tmp/r/hosts", Target: "/etc/hosts"}}},
		{Network: NetFull, Identity: &Identity{UID: 4000, GID: 4000, User: "sandgate-offline", Group: "sandgate"}},
		fullConfig(),
	}
}

// jsonRoundTrip is the configuration the init got when SendConfig sent
// JSON (before the binary encoding).
func jsonRoundTrip(t *testing.T, cfg Config) Config {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

func TestConfigOverStatusSocket(t *testing.T) {
	for _, cfg := range testConfigs() {
		parent, child := configPair(t)
		if err := SendConfig(parent, cfg); err != nil {
			t.Fatalf("SendConfig(%+v): %v", cfg, err)
		}
		got, cmd, err := ReadConfig(DeferredArgs([]string{"true", "x y"}), child)
		if err != nil {
			t.Fatalf("ReadConfig after SendConfig(%+v): %v", cfg, err)
		}
		if want := jsonRoundTrip(t, cfg); !reflect.DeepEqual(got, want) || !reflect.DeepEqual(cmd, []string{"true", "x y"}) {
			t.Errorf("sent %+v, read %+v (want %+v) and command %q", cfg, got, want, cmd)
		}
	}
}

// TestConfigArgvRoundTrip: the argv form (JSON) still carries every field.
func TestConfigArgvRoundTrip(t *testing.T) {
	args, err := Args(fullConfig(), []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	got, cmd, err := ReadConfig(args, -1)
	if err != nil || !reflect.DeepEqual(got, fullConfig()) || !reflect.DeepEqual(cmd, []string{"true"}) {
		t.Errorf("ReadConfig(Args(full)) = %+v, %q, %v", got, cmd, err)
	}
}

// TestDecodeConfigMalformed: a cut, grown or corrupted configuration is
// an error, never a panic; so is one over MaxConfig.
func TestDecodeConfigMalformed(t *testing.T) {
	raw := encoded(t, fullConfig())
	for n := range len(raw) {
		if _, err := DecodeConfig(raw[:n]); err == nil {
			t.Errorf("the configuration cut to %d of %d bytes was accepted", n, len(raw))
		}
	}
	if _, err := DecodeConfig(append(bytes.Clone(raw), 0)); err == nil || !strings.Contains(err.Error(), "bad configuration") {
		t.Errorf("a configuration with a byte more: %v", err)
	}
	bad := bytes.Clone(raw)
	bad[0] = 6 // network 3
	if _, err := DecodeConfig(bad); err == nil || !strings.Contains(err.Error(), "unknown network 3") {
		t.Errorf("network 3: %v", err)
	}
	for i := range raw {
		c := bytes.Clone(raw)
		c[i] ^= 0xff
		_, _ = DecodeConfig(c) // must not panic
	}
	big := encoded(t, Config{View: make([]byte, MaxConfig)})
	if _, err := DecodeConfig(big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a configuration over MaxConfig: %v", err)
	}
}

func TestConfigOverStatusSocketErrors(t *testing.T) {
	// The parent gone before sending: ErrNoConfig, so the init ends quietly.
	parent, child := configPair(t)
	parent.Close()
	if _, _, err := ReadConfig(DeferredArgs([]string{"true"}), child); !errors.Is(err, ErrNoConfig) {
		t.Errorf("closed socket: %v, want ErrNoConfig", err)
	}
	// Not a configuration.
	parent, child = configPair(t)
	if _, err := unix.Write(int(parent.Fd()), []byte("{not a config")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadConfig(DeferredArgs([]string{"true"}), child); err == nil {
		t.Error("a message that is not a configuration was accepted")
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
	big := Config{View: make([]byte, MaxConfig)}
	if err := SendConfig(parent, big); err == nil {
		t.Error("SendConfig accepted a configuration over MaxConfig")
	}
}

// encoded is cfg's encoding.
func encoded(t *testing.T, cfg Config) []byte {
	t.Helper()
	raw, err := encodeConfig(&cfg)
	if err != nil {
		t.Fatalf("encoding %+v: %v", cfg, err)
	}
	return raw
}

// TestEncodeConfigBounds: what the decoder would refuse is not sent.
func TestEncodeConfigBounds(t *testing.T) {
	parent, _ := configPair(t)
	cfg := Config{Replace: make([]ReplaceFile, maxConfigList+1)}
	if err := SendConfig(parent, cfg); err == nil || !strings.Contains(err.Error(), "replacement files") {
		t.Errorf("SendConfig with %d replacement files: %v", len(cfg.Replace), err)
	}
}

// FuzzDecodeConfig: whatever arrives on the status socket, decoding never
// panics, and what it accepts encodes and decodes to itself.
func FuzzDecodeConfig(f *testing.F) {
	for _, cfg := range testConfigs() {
		raw, err := encodeConfig(&cfg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"net":0,"dir":"/w"}`))
	f.Add([]byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := DecodeConfig(raw)
		if err != nil {
			return
		}
		again := encoded(t, cfg)
		back, err := DecodeConfig(again)
		if err != nil {
			t.Fatalf("decoding the re-encoded %q: %v", again, err)
		}
		if !reflect.DeepEqual(back, cfg) {
			t.Fatalf("%q decoded to %+v, re-encoded to %+v", raw, cfg, back)
		}
	})
}

// TestFullConfigSetsEveryField: fullConfig sets every exported field, so
// that a field added to Config without its binary encoding fails the round
// trips instead of being dropped in silence.
func TestFullConfigSetsEveryField(t *testing.T) {
	if unset := wiretest.Unset(fullConfig()); len(unset) > 0 {
		t.Errorf("fullConfig leaves %v unset: set them (and encode them in encode_linux.go)", unset)
	}
}

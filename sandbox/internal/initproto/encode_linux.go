//go:build linux

package initproto

import (
	"fmt"

	"github.com/sandgate/sandgate/internal/wire"
)

// The configuration on the status socket (SendConfig, DecodeConfig): the
// fields of Config in the compact encoding of package wire, in declaration
// order. The parent and the init are the same binary, so the encoding
// needs no field names and no versioning; decoding it costs the init's
// critical path a few microseconds where a first JSON decoding (building
// encoding/json's reflection caches) cost about a quarter of a
// millisecond. Args keeps JSON for the argv form.

// maxConfigList bounds every list of a decoded configuration.
const maxConfigList = 1 << 12

// encodeConfig encodes cfg; more replacement files than maxConfigList
// (which decodeConfig would refuse) are an error. SendConfig checks the
// size.
func encodeConfig(cfg *Config) ([]byte, error) {
	if len(cfg.Replace) > maxConfigList {
		return nil, fmt.Errorf("%d replacement files, more than %d", len(cfg.Replace), maxConfigList)
	}
	e := wire.NewEncoder(128 + len(cfg.View))
	e.Int(int(cfg.Network))
	e.Bool(cfg.AllowUnix)
	e.Strings(cfg.UnixSockets)
	e.String(cfg.Dir)
	e.String(cfg.Executable)
	e.Bool(cfg.PTY)
	e.Bool(cfg.Identity != nil)
	if id := cfg.Identity; id != nil {
		e.Int(id.UID)
		e.Int(id.GID)
		e.String(id.User)
		e.String(id.Group)
	}
	e.Blob(cfg.View)
	e.Bool(cfg.Transparent != nil)
	if cfg.Transparent != nil {
		e.Strings(cfg.Transparent.SelfAddrs)
	}
	e.Uint(uint64(len(cfg.Replace)))
	for _, r := range cfg.Replace {
		e.String(r.Source)
		e.String(r.Target)
		e.Bool(r.Transparent)
	}
	return e.Bytes(), nil
}

// decodeConfig decodes what encodeConfig encoded; empty lists and an
// empty view decode as nil. The view shares raw's memory.
func decodeConfig(raw []byte) (Config, error) {
	if len(raw) > MaxConfig {
		return Config{}, fmt.Errorf("bad configuration: %d bytes, more than %d", len(raw), MaxConfig)
	}
	d := wire.NewDecoder(raw)
	var cfg Config
	cfg.Network = Network(d.Int())
	if cfg.Network < NetProxy || cfg.Network > NetFull {
		d.Fail(fmt.Errorf("unknown network %d", int(cfg.Network)))
	}
	cfg.AllowUnix, cfg.UnixSockets = d.Bool(), d.Strings()
	cfg.Dir, cfg.Executable, cfg.PTY = d.String(), d.String(), d.Bool()
	if d.Bool() {
		cfg.Identity = &Identity{UID: d.Int(), GID: d.Int(), User: d.String(), Group: d.String()}
	}
	cfg.View = d.Blob()
	if d.Bool() {
		cfg.Transparent = &Transparent{SelfAddrs: d.Strings()}
	}
	if n := d.Count(maxConfigList); n > 0 {
		cfg.Replace = make([]ReplaceFile, n)
		for i := range cfg.Replace {
			cfg.Replace[i] = ReplaceFile{Source: d.String(), Target: d.String(), Transparent: d.Bool()}
		}
	}
	if err := d.Finish(); err != nil {
		return Config{}, fmt.Errorf("bad configuration: %w", err)
	}
	return cfg, nil
}

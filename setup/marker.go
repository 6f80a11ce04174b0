// Package setup installs, checks and removes the identity backend: two
// sandbox users (offline and online), a group for them, the firewall rules
// that confine the offline user to the loopback proxy ports, and a versioned
// marker recording what was installed. Installing needs root (Linux) or an
// elevated administrator (Windows). The marker types and drift reasons here
// are pure and shared by every platform.
package setup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sandgate/sandgate/ruleplan"
)

// Version is the version of the setup procedure (users, group, homes,
// marker layout, and the firewall's fixed parts outside the rule plan).
// Bump it when Install would do something different. Version 2 added the
// input chain that keeps the proxy ports for sandgate's marked listeners;
// version 3 the output rule that lets through the offline user's DNS which
// a transparent identity run redirected to its stub on a reserved port
// (nftfw.RedirectedUDPRuleName), and the input rule that lets only marked
// sockets receive UDP there (nftfw.InputUDPRuleName).
const Version = 3

// Default names and ports.
const (
	OfflineUser = "sandgate-offline"
	OnlineUser  = "sandgate-online"
	Group       = "sandgate"
	// DefaultPortBase and DefaultPortCount describe the loopback proxy ports
	// reserved for identity runs: each run takes two free ones (HTTP and
	// SOCKS5), so the default allows eight runs at once.
	DefaultPortBase  = 47100
	DefaultPortCount = 16
)

// Options say what to install.
type Options struct {
	// ProxyPorts are the loopback ports the offline user may reach (the
	// proxy ports reserved for identity runs). Empty: the default range.
	ProxyPorts []uint16
	// AllowLocalBinding opens every local port to the offline user;
	// non-local destinations stay blocked.
	AllowLocalBinding bool

	// The fields below say where and under which names to install. Their
	// zero values are the product's defaults; tests change them.

	// OfflineUser, OnlineUser and Group name the two sandbox users and
	// their group. Empty: the package constants of the same names.
	OfflineUser, OnlineUser, Group string
	// StateDir holds the marker (setup.json) and, on Linux, the users'
	// homes (home/USER). Empty: the platform default (Linux:
	// /var/lib/sandgate).
	StateDir string
	// EtcDir is the directory holding passwd, shadow, group, gshadow and
	// login.defs (Linux). Empty: /etc.
	EtcDir string
	// NetNS is the path of the network namespace whose firewall rules are
	// installed and checked (Linux), e.g. /run/netns/NAME. Empty: the
	// caller's own, which for `sandgate setup` is the host's.
	NetNS string
}

// WithDefaults fills in the default port range and the default names.
func (o Options) WithDefaults() Options {
	if len(o.ProxyPorts) == 0 {
		o.ProxyPorts = DefaultPorts()
	}
	if o.OfflineUser == "" {
		o.OfflineUser = OfflineUser
	}
	if o.OnlineUser == "" {
		o.OnlineUser = OnlineUser
	}
	if o.Group == "" {
		o.Group = Group
	}
	return o
}

// DefaultPorts returns the default reserved range of proxy ports.
func DefaultPorts() []uint16 {
	ps := make([]uint16, DefaultPortCount)
	for i := range ps {
		ps[i] = uint16(DefaultPortBase + i)
	}
	return ps
}

// Plan returns the rule plan for o.
func (o Options) Plan() (ruleplan.Plan, error) {
	o = o.WithDefaults()
	return ruleplan.Build(o.ProxyPorts, o.AllowLocalBinding)
}

// Marker records an installed setup. It is written last by Install and read
// by every identity run.
type Marker struct {
	SetupVersion      int       `json:"setup_version"`
	PlanVersion       int       `json:"plan_version"`
	OfflineUser       string    `json:"offline_user"`
	OnlineUser        string    `json:"online_user"`
	Group             string    `json:"group"`
	OfflineID         string    `json:"offline_id"` // uid on Linux, SID on Windows
	OnlineID          string    `json:"online_id"`
	GroupID           string    `json:"group_id"` // gid on Linux, SID on Windows
	ProxyPorts        []uint16  `json:"proxy_ports"`
	AllowLocalBinding bool      `json:"allow_local_binding"`
	RulesDigest       string    `json:"rules_digest"`
	InstalledAt       time.Time `json:"installed_at"`
	InstalledBy       string    `json:"installed_by"` // sandgate build that wrote it
}

// MissingRules is the difference Check and Status report on Linux when
// sandgate's firewall table is not installed, typically after a reboot.
const MissingRules = "the firewall rules are missing (they do not survive a reboot; run `sandgate setup` again, e.g. from a oneshot unit: see docs/identity.md)"

// ErrNotInstalled is returned by ReadMarker when no setup is installed.
var ErrNotInstalled = errors.New("the identity backend is not set up")

// ReadMarker reads the marker at path.
func ReadMarker(path string) (Marker, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Marker{}, fmt.Errorf("%w (no marker at %s)", ErrNotInstalled, path)
	}
	if err != nil {
		return Marker{}, fmt.Errorf("reading setup marker: %w", err)
	}
	var m Marker
	if err := json.Unmarshal(data, &m); err != nil {
		return Marker{}, fmt.Errorf("setup marker %s is corrupt: %w", path, err)
	}
	return m, nil
}

// WriteMarker writes m to path atomically (a temporary file renamed over
// it), readable by everyone and writable by its owner only.
func WriteMarker(path string, m Marker) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding setup marker: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing setup marker: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".marker-*")
	if err != nil {
		return fmt.Errorf("writing setup marker: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing setup marker: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing setup marker: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing setup marker: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing setup marker: %w", err)
	}
	return nil
}

// Drift lists, in plain words, how the installed marker differs from what
// this version of sandgate would install for o. Nil means current.
func Drift(m Marker, o Options) []string {
	o = o.WithDefaults()
	var out []string
	if m.SetupVersion != Version {
		out = append(out, fmt.Sprintf("setup version changed from %d to %d", m.SetupVersion, Version))
	}
	want, err := o.Plan()
	if err != nil {
		return append(out, err.Error())
	}
	out = append(out, ruleplan.Drift(m.PlanVersion, m.ProxyPorts, m.AllowLocalBinding, want)...)
	if len(out) == 0 && m.RulesDigest != want.Digest() {
		out = append(out, "the recorded rules digest does not match the rules this version installs")
	}
	return out
}

// Covers reports whether the installed marker admits a run that needs ports
// and the given local-binding mode: every needed port is installed and the
// modes agree (a run without local binding must not run under rules that
// open loopback, and the reverse would fail its connections).
func Covers(m Marker, ports []uint16, allowLocalBinding bool) bool {
	if m.AllowLocalBinding != allowLocalBinding {
		return false
	}
	for _, p := range ports {
		if !slices.Contains(m.ProxyPorts, p) {
			return false
		}
	}
	return true
}

// markerDrift checks a marker against itself and this build: setup and rule
// plan versions, valid ports, and a digest that matches its ports and mode.
// It returns the plan the marker describes and the differences in words;
// ok is false when the marker's ports are invalid (no plan can be built).
func markerDrift(m Marker) (plan ruleplan.Plan, drift []string, ok bool) {
	if m.SetupVersion != Version {
		drift = append(drift, fmt.Sprintf("the setup was made by setup version %d, this sandgate installs version %d", m.SetupVersion, Version))
	}
	if m.PlanVersion != ruleplan.Version {
		drift = append(drift, fmt.Sprintf("the installed rules follow rule plan version %d, this sandgate installs version %d", m.PlanVersion, ruleplan.Version))
	}
	plan, err := ruleplan.Build(m.ProxyPorts, m.AllowLocalBinding)
	if err != nil {
		return plan, append(drift, "the setup marker's proxy ports are invalid: "+err.Error()), false
	}
	if m.RulesDigest != plan.Digest() {
		drift = append(drift, "the setup marker's rules digest does not match its ports and mode")
	}
	return plan, drift, true
}

package winsec

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/sandgate/sandgate/proxyenv"
)

// LaunchArg is the first argument (after the program name) with which an
// identity run starts sandgate itself as the sandbox user; that process
// (the launcher) reads LaunchEnv, drops its token's privileges and starts
// the command.
const LaunchArg = "__sandgate_windows_launch__"

// LaunchEnv is the variable carrying the launcher's Launch request. The
// launcher removes it from the environment before starting the command.
const LaunchEnv = "SANDGATE_WINDOWS_LAUNCH"

// Launch is what the launcher needs to start the command.
type Launch struct {
	Args           []string `json:"args"`             // the command and its arguments
	Dir            string   `json:"dir"`              // working directory ("" = inherited)
	SandboxGroupID string   `json:"sandbox_group_id"` // SID kept enabled in the restricted token
}

// EncodeLaunch returns l as the value of LaunchEnv.
func EncodeLaunch(l Launch) (string, error) {
	if len(l.Args) == 0 || l.Args[0] == "" {
		return "", errors.New("launch request without a command")
	}
	raw, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// DecodeLaunch parses a LaunchEnv value.
func DecodeLaunch(v string) (Launch, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return Launch{}, fmt.Errorf("launch request: %w", err)
	}
	var l Launch
	if err := json.Unmarshal(raw, &l); err != nil {
		return Launch{}, fmt.Errorf("launch request: %w", err)
	}
	if len(l.Args) == 0 || l.Args[0] == "" {
		return Launch{}, errors.New("launch request without a command")
	}
	return l, nil
}

// NoNetworkEnv returns the environment of an identity run without network:
// base without any inherited proxy variable, in Windows form.
func NoNetworkEnv(base []string) []string {
	return WindowsEnv(proxyenv.Merge(base, nil))
}

// WindowsEnv returns env as Windows keeps an environment: names compare
// without regard to case, so of entries whose names differ only in case
// the last one wins (keeping the spelling of the first); entries are sorted
// by upper-cased name, as CreateProcess expects; entries without "=" or
// with an empty name are dropped, except the "=C:=C:\dir" entries Windows
// uses for per-drive directories, which are kept first.
func WindowsEnv(env []string) []string {
	type entry struct{ name, value string }
	idx := map[string]int{}
	var entries []entry
	var drives []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "=") {
			if strings.Contains(kv[1:], "=") {
				drives = append(drives, kv)
			}
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		u := strings.ToUpper(k)
		if i, seen := idx[u]; seen {
			entries[i].value = v
			continue
		}
		idx[u] = len(entries)
		entries = append(entries, entry{k, v})
	}
	sort.SliceStable(entries, func(i, j int) bool {
		return strings.ToUpper(entries[i].name) < strings.ToUpper(entries[j].name)
	})
	out := append([]string(nil), drives...)
	for _, e := range entries {
		out = append(out, e.name+"="+e.value)
	}
	return out
}

// EnvBlock encodes env (already in Windows form) as the UTF-16 environment
// block CreateProcessWithLogonW takes with CREATE_UNICODE_ENVIRONMENT: each
// entry NUL-terminated, the block terminated by one more NUL. An entry
// containing NUL is refused.
func EnvBlock(env []string) ([]uint16, error) {
	var b []uint16
	for _, kv := range env {
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("environment entry %q contains NUL", strings.SplitN(kv, "=", 2)[0])
		}
		b = append(b, utf16.Encode([]rune(kv))...)
		b = append(b, 0)
	}
	if len(b) == 0 {
		b = append(b, 0)
	}
	return append(b, 0), nil
}

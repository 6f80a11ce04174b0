//go:build !(linux || darwin)

package proxy

// descriptorLimit reports no limit: on this system (Windows has no small
// per-process handle limit) the proxy does not plan around one.
func descriptorLimit() (limit, open int, err error) { return 0, 0, nil }

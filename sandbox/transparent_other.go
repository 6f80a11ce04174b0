//go:build !linux

package sandbox

// StaleTransparentRules returns nothing: only Linux identity runs have
// transparent rules.
func StaleTransparentRules(netns string) ([]string, error) { return nil, nil }

//go:build !linux

package sandbox

// trustSupported says whether Run can give CMD Spec.TrustPEM here: not yet.
const trustSupported = false

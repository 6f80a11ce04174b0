//go:build !linux

package sandbox

// viewSupported says whether Run can apply Spec.View here: not yet.
const viewSupported = false

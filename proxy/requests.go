package proxy

import "github.com/sandgate/sandgate/policy"

// RequestPolicy decides requests inside hosts that carry method or path
// rules (inspected hosts). *policy.Policy implements it.
type RequestPolicy interface {
	// Inspects reports whether requests to host:port are decided one by one.
	Inspects(host string, port uint16) bool
	// CheckRequest decides one request to an inspected host.
	CheckRequest(host string, port uint16, method, path string) policy.Decision
}

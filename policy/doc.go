// Package policy decides, without any I/O, whether a network destination may be
// reached. It parses allow/deny entries, normalises host names, classifies
// addresses and returns decisions that carry a machine-readable reason.
//
// The order of work the rest of sandgate follows for a host name is:
// CheckTarget (name against deny/allow, before any DNS lookup), then one
// resolution by the caller, then FilterResolved (drop every address in a
// denied class), then dial only a surviving address.
package policy

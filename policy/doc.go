// Package policy decides, without any I/O, whether a network destination may be
// reached. It parses allow/deny entries, normalises host names, classifies
// addresses and returns decisions that carry a machine-readable reason.
//
// The order of work the rest of sandgate follows for a host name is:
// CheckTarget (name against deny/allow, before any DNS lookup), then one
// resolution by the caller, then FilterResolved (drop every address in a
// denied class), then dial only a surviving address.
//
// # Entries
//
// See ParseEntry for the syntax. Name entries match only requests that name
// a host; IP/CIDR entries match only requests that name an IP literal and,
// for deny entries and class exemptions, resolved addresses. A name entry
// never matches an IP literal, so "127.0.0.1" must be allowed as an address.
// Deny entries win over allow entries; an empty allow list allows nothing.
//
// # Names
//
// NormalizeName lower-cases, removes one trailing dot and maps Unicode to
// punycode (UTS #46, non-transitional, Bidi and ContextJ rules). '_' is
// accepted in labels, as Go's resolver accepts it; labels may not start or end
// with '-'. A name whose last label is numeric ("127.1", "0x7f.1",
// "2130706433") is refused with ErrNumericName: an inet_aton-style parser
// would read it as an address.
//
// # Address classes
//
// Classify names the class of an address; the classes other than "" are
// refused for destinations unless an IP/CIDR allow entry that covers the
// address and lies wholly inside the class's range names it explicitly (so "--allow 127.0.0.1:8080" reaches a
// local server, but "--allow 0.0.0.0/0" does not open loopback or the cloud
// metadata addresses, and "--allow 169.254.0.0/16" does not open
// 169.254.169.254). Private addresses also pass with AllowPrivateDestinations.
// Metadata addresses are their own class, so that switch never opens them.
package policy

package policy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Config is the user-facing policy configuration.
type Config struct {
	Allow                    []string // allow entries
	Deny                     []string // deny entries (win over allow)
	AllowPrivateDestinations bool     // let resolved private (RFC 1918, CGNAT, ULA) addresses through
	DeniedResolvedAddresses  []string // extra IPs/CIDRs never dialled

	// ReadOnly entries (HOST[:PORT][/PATH]) allow GET, HEAD and OPTIONS
	// there: each is the allow entry "GET,HEAD,OPTIONS " + entry.
	ReadOnly []string
	// ReadOnlyGit entries (HOST[:PORT][/REPO-GLOB]) allow git clone and
	// fetch over smart HTTP from the repositories, and not push.
	ReadOnlyGit []string
	// Inspect entries (host entries, no methods or path) make hosts
	// inspected without narrowing what they allow.
	Inspect []string
}

// Block says which kind of refusal a Decision is (maps to X-Proxy-Error).
type Block int

const (
	// BlockNone: the decision allows.
	BlockNone Block = iota
	// BlockAllowlist: nothing on the allow list matched (X-Proxy-Error: blocked-by-allowlist).
	BlockAllowlist
	// BlockDenylist: a deny entry matched (X-Proxy-Error: blocked-by-denylist).
	BlockDenylist
	// BlockAddress: the destination address is in a denied class or invalid (X-Proxy-Error: blocked-by-address).
	BlockAddress
	// BlockMethod: a rule of an inspected host matches the path, not the method (X-Proxy-Error: blocked-by-method).
	BlockMethod
	// BlockPath: no rule of an inspected host matches the path (X-Proxy-Error: blocked-by-path).
	BlockPath
)

// String returns the X-Proxy-Error value of the block ("blocked-by-allowlist",
// "blocked-by-denylist", "blocked-by-address", "blocked-by-method",
// "blocked-by-path"), or "" for BlockNone.
func (b Block) String() string {
	switch b {
	case BlockNone:
		return ""
	case BlockAllowlist:
		return "blocked-by-allowlist"
	case BlockDenylist:
		return "blocked-by-denylist"
	case BlockAddress:
		return "blocked-by-address"
	case BlockMethod:
		return ReasonBlockedByMethod
	case BlockPath:
		return ReasonBlockedByPath
	}
	return "Block(" + strconv.Itoa(int(b)) + ")"
}

// Reason codes carried by a Decision. Address-class refusals use
// "address-class:" + class name (e.g. "address-class:loopback").
const (
	ReasonAllowed       = "allowed"
	ReasonNotAllowed    = "not-allowed"
	ReasonDenied        = "denied"
	ReasonInvalidHost   = "invalid-host"   // the name could not be normalised
	ReasonNumericName   = "numeric-name"   // 2130706433, 0x7f.1, 127.1 ...
	ReasonNoAddress     = "no-address"     // resolution gave no usable address
	ReasonResolveFailed = "resolve-failed" // the one DNS lookup failed (set by package egress)
	ReasonClassPrefix   = "address-class:"
)

// Decision is the outcome of a policy check.
//
// Text is what the client (CMD) may be told; Detail, when set, is the same
// one line with what only sandgate's operator may see (a decider's error,
// which can name the harness's paths and sockets). Detail goes to the audit
// and sandgate's own stderr, never to the client: see AuditText.
type Decision struct {
	Allow  bool
	Block  Block
	Reason string // machine-readable: one of the Reason* codes
	Text   string // one line for humans, e.g. `evil.test:443 is not on the allow list`
	Detail string // Text with details the client must not see; empty when there are none
	Entry  string // the Raw entry that decided, if any
}

// AuditText is the text of d for the audit and sandgate's own messages:
// Detail when set, else Text. Never send it to the client.
func (d Decision) AuditText() string {
	if d.Detail != "" {
		return d.Detail
	}
	return d.Text
}

// Policy is a compiled, immutable Config. Safe for concurrent use.
type Policy struct {
	allow        []Entry
	deny         []Entry
	allowPrivate bool
	deniedAddrs  []Entry // KindPrefix entries from DeniedResolvedAddresses, Port 0
	inspect      []Entry // Inspect entries: hosts inspected without narrowing
}

// New compiles c; errors name the offending entry.
//
// DeniedResolvedAddresses take an IP address or CIDR each (no name, no port;
// IPv6 may be bracketed). Deny entries name hosts only; allow entries may be
// method/path rules (see ParseEntry, CheckRequest).
func New(c Config) (*Policy, error) {
	p := &Policy{allowPrivate: c.AllowPrivateDestinations}
	for _, s := range c.Allow {
		e, err := parseEntry(s)
		if err != nil {
			return nil, fmt.Errorf("invalid allow entry %q: %w", s, err)
		}
		p.allow = append(p.allow, e)
	}
	for _, s := range c.Deny {
		e, err := parseEntry(s)
		if err == nil && e.hasRule() {
			err = errors.New("a deny entry names a host only (no methods or path); an inspected host refuses every request its allow rules do not match")
		}
		if err != nil {
			return nil, fmt.Errorf("invalid deny entry %q: %w", s, err)
		}
		p.deny = append(p.deny, e)
	}
	for _, s := range c.DeniedResolvedAddresses {
		e, err := parseEntry(s)
		if err == nil && (e.Kind != KindPrefix || e.Port != 0 || e.hasRule()) {
			err = errors.New("must be an IP address or CIDR without a port")
		}
		if err != nil {
			return nil, fmt.Errorf("invalid denied resolved address %q: %w", s, err)
		}
		p.deniedAddrs = append(p.deniedAddrs, e)
	}
	if err := p.compileRequestRules(c); err != nil {
		return nil, err
	}
	return p, nil
}

// InvalidTargetDecision returns the refusal for a host and port that
// ParseTarget rejected with err: reason "numeric-name" when err wraps
// ErrNumericName, "invalid-host" otherwise. The Text quotes the raw host.
func InvalidTargetDecision(host string, port uint16, err error) Decision {
	hp := strconv.Quote(hostPort(host, port))
	if errors.Is(err, ErrNumericName) {
		return Decision{Block: BlockAddress, Reason: ReasonNumericName,
			Text: hp + " names a host that looks like a numeric address; write the address in canonical form"}
	}
	return Decision{Block: BlockAddress, Reason: ReasonInvalidHost,
		Text: hp + " is not a valid host and port"}
}

// CheckTarget decides before any DNS lookup. For names: deny entries, then
// allow entries. For IP literals: deny entries, IP/CIDR allow entries, and the
// address-class check.
//
// For a literal, DeniedResolvedAddresses also apply, and the class check is
// passed only when an allow entry with a matching port covers the address and
// lies wholly inside the range of the address's class (so "127.0.0.1:8080" or
// "10.0.0.0/8" name a class explicitly, while "0.0.0.0/0" does not unlock
// loopback or metadata). A class refusal carries no Entry.
// Private addresses pass when AllowPrivateDestinations is set. A target that
// is not in normalised form is refused as invalid.
func (p *Policy) CheckTarget(t Target) Decision {
	if p == nil {
		return Decision{Block: BlockAllowlist, Reason: ReasonNotAllowed, Text: t.String() + " is refused: no policy is configured"}
	}
	if t.Port == 0 {
		return invalidTarget(t)
	}
	if t.IsIP() {
		return p.checkLiteral(t)
	}
	if n, err := normalizeName(t.Host); err != nil || n != t.Host {
		return invalidTarget(t)
	}
	for _, e := range p.deny {
		if e.Kind != KindPrefix && e.portMatches(t.Port) && e.matchesName(t.Host) {
			return deniedBy(t.String()+" ", e)
		}
	}
	for _, e := range p.allow {
		if e.Kind != KindPrefix && e.portMatches(t.Port) && e.matchesName(t.Host) {
			return allowedBy(t, e)
		}
	}
	return notAllowed(t)
}

// checkLiteral is CheckTarget for an IP literal.
func (p *Policy) checkLiteral(t Target) Decision {
	a := t.Addr
	if a.Zone() != "" || a.Is4In6() || t.Host != a.String() {
		return invalidTarget(t)
	}
	if d, refused := p.checkDenied(t.String()+" ", a, t.Port); refused {
		return d
	}
	var allowed *Entry
	for i, e := range p.allow {
		if e.Kind == KindPrefix && e.portMatches(t.Port) && e.Prefix.Contains(a) {
			allowed = &p.allow[i]
			break
		}
	}
	if allowed == nil {
		return notAllowed(t)
	}
	if class, ok := p.classPasses(a, t.Port); !ok {
		return Decision{Block: BlockAddress, Reason: ReasonClassPrefix + class,
			Text: t.String() + " is " + classText(class)}
	}
	return allowedBy(t, *allowed)
}

// FilterResolved applies the address-class check to the addresses one
// resolution of t returned. local holds this host's own interface addresses.
// It returns the addresses that may be dialled (in the order given) and, when
// none survive, the Decision explaining the first refusal.
//
// FilterResolved first repeats CheckTarget(t) and returns no address if that
// refuses. Then, per address (IPv4-mapped forms are unwrapped): a deny
// IP/CIDR entry with a matching port refuses it ("denied"); so do
// DeniedResolvedAddresses ("address-class:denied-address"), a denied class
// (see Classify; private passes with AllowPrivateDestinations) and an address
// in local ("address-class:local-address"; loopback addresses are judged by
// the loopback class alone). A class refusal is waived when an IP/CIDR allow
// entry with a matching port covers the address and lies wholly inside the
// class's range; a
// local-address refusal only when an allow entry is exactly that address.
// When addresses survive, the Decision is the allow of CheckTarget.
func (p *Policy) FilterResolved(t Target, addrs []netip.Addr, local []netip.Addr) ([]netip.Addr, Decision) {
	d := p.CheckTarget(t)
	if !d.Allow {
		return nil, d
	}
	var (
		out   []netip.Addr
		first *Decision
	)
	for _, a := range addrs {
		if r, refused := p.checkResolved(t, a, local); refused {
			if first == nil {
				first = &r
			}
			continue
		}
		out = append(out, a.Unmap())
	}
	if len(out) > 0 {
		return out, d
	}
	if first != nil {
		return nil, *first
	}
	return nil, Decision{Block: BlockAddress, Reason: ReasonNoAddress, Text: t.String() + " resolved to no address"}
}

// checkResolved judges one resolved address a of target t.
func (p *Policy) checkResolved(t Target, a netip.Addr, local []netip.Addr) (Decision, bool) {
	// subject + "is ..." makes the Text.
	subject := t.String() + " "
	if !t.IsIP() || a.Unmap() != t.Addr {
		subject = t.String() + " resolved to " + a.String() + ", which "
	}
	a = a.Unmap()
	if d, refused := p.checkDenied(subject, a, t.Port); refused {
		return d, true
	}
	class, ok := p.classPasses(a, t.Port)
	if !ok {
		return Decision{Block: BlockAddress, Reason: ReasonClassPrefix + class, Text: subject + "is " + classText(class)}, true
	}
	if Classify(a) == ClassLoopback {
		// Every loopback address belongs to this host; the loopback class
		// check above is the whole judgement.
		return Decision{}, false
	}
	for _, l := range local {
		if l.WithZone("").Unmap() == a && !p.exempt(a, netip.PrefixFrom(a, a.BitLen()), t.Port) {
			return Decision{Block: BlockAddress, Reason: ReasonClassPrefix + ClassLocalAddress,
				Text: subject + "is " + classText(ClassLocalAddress)}, true
		}
	}
	return Decision{}, false
}

// checkDenied applies deny IP/CIDR entries and DeniedResolvedAddresses to a.
// subject + "is ..." makes the Text.
func (p *Policy) checkDenied(subject string, a netip.Addr, port uint16) (Decision, bool) {
	for _, e := range p.deny {
		if e.Kind == KindPrefix && e.portMatches(port) && e.Prefix.Contains(a) {
			return deniedBy(subject, e), true
		}
	}
	for _, e := range p.deniedAddrs {
		if e.Prefix.Contains(a) {
			return Decision{Block: BlockAddress, Reason: ReasonClassPrefix + ClassDenied,
				Text: subject + "is " + classText(ClassDenied) + " (" + strconv.Quote(e.Raw) + ")", Entry: e.Raw}, true
		}
	}
	return Decision{}, false
}

// classPasses reports whether a's class lets it through for port, and names
// the class when it does not.
func (p *Policy) classPasses(a netip.Addr, port uint16) (string, bool) {
	class, rng := classify(a)
	switch {
	case class == "":
		return "", true
	case class == ClassPrivate && p.allowPrivate:
		return "", true
	case class != ClassInvalid && p.exempt(a, rng, port):
		return "", true
	}
	return class, false
}

// exempt reports whether an IP/CIDR allow entry with a matching port covers
// a and lies wholly inside rng.
func (p *Policy) exempt(a netip.Addr, rng netip.Prefix, port uint16) bool {
	if !rng.IsValid() {
		return false
	}
	for _, e := range p.allow {
		if e.Kind == KindPrefix && e.portMatches(port) && e.Prefix.Contains(a) &&
			e.Prefix.Addr().BitLen() == rng.Addr().BitLen() &&
			e.Prefix.Bits() >= rng.Bits() && rng.Contains(e.Prefix.Addr()) {
			return true
		}
	}
	return false
}

// allowedBy is the allow Decision for t by entry e.
func allowedBy(t Target, e Entry) Decision {
	return Decision{Allow: true, Block: BlockNone, Reason: ReasonAllowed,
		Text: t.String() + " is allowed by allow entry " + strconv.Quote(e.Raw), Entry: e.Raw}
}

// deniedBy is the refusal by deny entry e; subject + "is ..." makes the Text.
func deniedBy(subject string, e Entry) Decision {
	return Decision{Block: BlockDenylist, Reason: ReasonDenied,
		Text: subject + "is denied by deny entry " + strconv.Quote(e.Raw), Entry: e.Raw}
}

// notAllowed is the refusal of a target no allow entry matched.
func notAllowed(t Target) Decision {
	return Decision{Block: BlockAllowlist, Reason: ReasonNotAllowed, Text: t.String() + " is not on the allow list"}
}

// invalidTarget is the refusal of a Target that is not in normalised form.
func invalidTarget(t Target) Decision {
	return Decision{Block: BlockAddress, Reason: ReasonInvalidHost,
		Text: strconv.Quote(t.String()) + " is not a valid host and port"}
}

// hostPort joins host and port, bracketing IPv6 literals that are not
// bracketed already.
func hostPort(host string, port uint16) string {
	if strings.HasPrefix(host, "[") {
		return host + ":" + strconv.Itoa(int(port))
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

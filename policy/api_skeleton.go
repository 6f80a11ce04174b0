package policy

// THIS FILE IS THE AGREED API. Implementations replace the panics; signatures
// must not change without updating every caller.

import "net/netip"

// Kind says what a policy Entry matches.
type Kind int

const (
	// KindExact matches exactly one host name ("example.com").
	KindExact Kind = iota + 1
	// KindSubdomains matches any subdomain but not the apex ("*.example.com").
	KindSubdomains
	// KindApexAndSubdomains matches the apex and every subdomain ("**.example.com").
	KindApexAndSubdomains
	// KindPrefix matches an IP address or CIDR ("203.0.113.10", "198.51.100.0/24", "[2001:db8::1]:443").
	KindPrefix
)

// Entry is one parsed allow or deny entry.
type Entry struct {
	Raw    string       // the entry as the user wrote it
	Kind   Kind         // what it matches
	Name   string       // normalised name (for name kinds): "example.com"
	Prefix netip.Prefix // for KindPrefix; a single address is a /32 or /128
	Port   uint16       // 0 means any port
}

// Config is the user-facing policy configuration.
type Config struct {
	Allow                    []string // allow entries
	Deny                     []string // deny entries (win over allow)
	AllowPrivateDestinations bool     // let resolved private (RFC 1918, CGNAT, ULA) addresses through
	DeniedResolvedAddresses  []string // extra IPs/CIDRs never dialled
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
)

// Reason codes carried by a Decision. Address-class refusals use
// "address-class:" + class name (e.g. "address-class:loopback").
const (
	ReasonAllowed     = "allowed"
	ReasonNotAllowed  = "not-allowed"
	ReasonDenied      = "denied"
	ReasonInvalidHost = "invalid-host" // the name could not be normalised
	ReasonNumericName = "numeric-name" // 2130706433, 0x7f.1, 127.1 ...
	ReasonNoAddress   = "no-address"   // resolution gave no usable address
	ReasonClassPrefix = "address-class:"
)

// Decision is the outcome of a policy check.
type Decision struct {
	Allow  bool
	Block  Block
	Reason string // machine-readable: one of the Reason* codes
	Text   string // one line for humans, e.g. `evil.test:443 is not on the allow list`
	Entry  string // the Raw entry that decided, if any
}

// Target is a normalised request destination.
type Target struct {
	Host string     // normalised name, or the canonical IP string for literals
	Addr netip.Addr // valid when the request named an IP literal
	Port uint16
}

// IsIP reports whether the target names an IP literal.
func (t Target) IsIP() bool { return t.Addr.IsValid() }

// ParseEntry parses one allow/deny entry; errors name the entry.
func ParseEntry(s string) (Entry, error) { panic("todo") }

// NormalizeName lower-cases, strips one trailing dot, converts IDNA to
// punycode and refuses invalid names; errors name the input.
func NormalizeName(s string) (string, error) { panic("todo") }

// ParseTarget normalises host (a name, an IPv4 literal, or an IPv6 literal
// with or without brackets) and port into a Target.
func ParseTarget(host string, port uint16) (Target, error) { panic("todo") }

// Policy is a compiled, immutable Config. Safe for concurrent use.
type Policy struct { /* implementation */
}

// New compiles c; errors name the offending entry.
func New(c Config) (*Policy, error) { panic("todo") }

// CheckTarget decides before any DNS lookup. For names: deny entries, then
// allow entries. For IP literals: deny entries, IP/CIDR allow entries, and the
// address-class check.
func (p *Policy) CheckTarget(t Target) Decision { panic("todo") }

// FilterResolved applies the address-class check to the addresses one
// resolution of t returned. local holds this host's own interface addresses.
// It returns the addresses that may be dialled (in the order given) and, when
// none survive, the Decision explaining the first refusal.
func (p *Policy) FilterResolved(t Target, addrs []netip.Addr, local []netip.Addr) ([]netip.Addr, Decision) {
	panic("todo")
}

// Classify names the denied class addr falls in ("loopback", "private",
// "metadata", ...) or returns "" for an ordinary address. IPv6 forms that
// embed IPv4 are judged by the IPv4 inside.
func Classify(addr netip.Addr) string { panic("todo") }

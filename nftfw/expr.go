package nftfw

import "fmt"

// Expr is one nftables expression of a rule, in this package's own terms:
// the few kinds sandgate writes, and Opaque or Foreign for anything else
// read back from the kernel. String is a canonical text: two expressions
// have the same text exactly when they do the same (fields the kernel does
// not echo back, such as a lookup's set id, are left out), so rules are
// compared by their texts.
type Expr interface {
	String() string
}

// Meta loads packet or socket metadata (NFT_META_*) into a register.
type Meta struct {
	Key            uint32 // NFT_META_* key
	Register       uint32
	SourceRegister bool // true: it sets the metadata from the register instead
}

// String is the canonical text of the expression.
func (e Meta) String() string {
	return fmt.Sprintf("meta key=%d reg=%d src=%v", e.Key, e.Register, e.SourceRegister)
}

// Cmp compares a register with constant data.
type Cmp struct {
	Op       uint32 // NFT_CMP_*
	Register uint32
	Data     []byte
}

// String is the canonical text of the expression.
func (e Cmp) String() string {
	return fmt.Sprintf("cmp op=%d reg=%d data=%x", e.Op, e.Register, e.Data)
}

// Fib looks the packet up in the routing tables. The field names and
// their order are part of the canonical text.
type Fib struct {
	Register       uint32
	ResultOIF      bool
	ResultOIFNAME  bool
	ResultADDRTYPE bool
	FlagSADDR      bool
	FlagDADDR      bool
	FlagMARK       bool
	FlagIIF        bool
	FlagOIF        bool
	FlagPRESENT    bool
}

// String is the canonical text of the expression.
func (e Fib) String() string { return fmt.Sprintf("fib %+v", plainFib(e)) }

// plainFib is Fib without its String method, so that %+v prints its fields.
type plainFib Fib

// Payload loads (or, for OperationType 1, writes) bytes of a packet header.
type Payload struct {
	OperationType  uint32 // 0 load, 1 write
	DestRegister   uint32
	SourceRegister uint32
	Base           uint32 // NFT_PAYLOAD_*_HEADER
	Offset         uint32
	Len            uint32
}

// String is the canonical text of the expression.
func (e Payload) String() string {
	return fmt.Sprintf("payload op=%d base=%d off=%d len=%d dreg=%d sreg=%d", e.OperationType, e.Base, e.Offset, e.Len, e.DestRegister, e.SourceRegister)
}

// Bitwise masks a register: dest = (source & Mask) ^ Xor.
type Bitwise struct {
	SourceRegister uint32
	DestRegister   uint32
	Len            uint32
	Mask, Xor      []byte
}

// String is the canonical text of the expression.
func (e Bitwise) String() string {
	return fmt.Sprintf("bitwise sreg=%d dreg=%d len=%d mask=%x xor=%x", e.SourceRegister, e.DestRegister, e.Len, e.Mask, e.Xor)
}

// Lookup tests whether a register's value is in a named set.
type Lookup struct {
	SetName        string
	SourceRegister uint32
	Invert         bool // match when the value is not in the set
	IsDestRegSet   bool
	DestRegister   uint32
}

// String is the canonical text of the expression.
func (e Lookup) String() string {
	return fmt.Sprintf("lookup set=%s sreg=%d inv=%v dreg=%v/%d", e.SetName, e.SourceRegister, e.Invert, e.IsDestRegSet, e.DestRegister)
}

// Socket loads a property of the packet's socket (NFT_SOCKET_*).
type Socket struct {
	Key      uint32
	Level    uint32
	Register uint32
}

// String is the canonical text of the expression.
func (e Socket) String() string {
	return fmt.Sprintf("socket key=%d level=%d reg=%d", e.Key, e.Level, e.Register)
}

// Reject refuses the packet (NFT_REJECT_*: a TCP reset or an ICMP error).
type Reject struct {
	Type uint32
	Code uint8
}

// String is the canonical text of the expression.
func (e Reject) String() string { return fmt.Sprintf("reject type=%d code=%d", e.Type, e.Code) }

// Verdict ends the rule with a verdict (NF_DROP, NF_ACCEPT, or a jump).
type Verdict struct {
	Kind  int64 // -5 return ... 0 drop, 1 accept (as nftables numbers them)
	Chain string
}

// String is the canonical text of the expression.
func (e Verdict) String() string { return fmt.Sprintf("verdict %d %s", e.Kind, e.Chain) }

// Opaque is an expression this package does not decode, read back from
// the kernel: its name and raw attributes. It never compares equal to
// anything sandgate installs.
type Opaque struct {
	Name string
	Data []byte
}

// String is the canonical text of the expression.
func (e Opaque) String() string { return fmt.Sprintf("%s %x", e.Name, e.Data) }

// Foreign is an expression that was decoded but is of a kind sandgate
// never writes; Text describes it.
type Foreign struct{ Text string }

// String is the canonical text of the expression.
func (e Foreign) String() string { return e.Text }

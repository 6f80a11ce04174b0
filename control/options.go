package control

import (
	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
)

// Audit values of a policy update made through the control socket: an
// Event with Proto ProtoControl, Decision DecisionUpdate, Reason
// ReasonAllowAdded or ReasonDenyAdded, Host the entry and Gen the new
// generation. (Decision is neither "allow" nor "deny", so that refusal
// summaries never count an update.)
const (
	ProtoControl     = "control"
	DecisionUpdate   = "update"
	ReasonAllowAdded = "allow-added"
	ReasonDenyAdded  = "deny-added"
)

// Options configure a Server.
type Options struct {
	// Dir is the socket directory ("" = Dir()); EnsureDir makes and checks it.
	Dir string
	// Run is the run's id, checked by CheckRunID ("" = NewRunID()).
	Run string
	// Live is the policy the requests change (required).
	Live *egress.Live
	// Command is the sandboxed command, for show.
	Command []string
	// Audit receives one event per policy update (nil: none).
	Audit audit.Sink
	// Logf receives refused connections and failures (nil: silent).
	Logf func(format string, args ...any)
}

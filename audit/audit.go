// Package audit records every proxy decision as an Event and offers sinks for
// them: a JSON Lines file and an in-memory summary of refusals.
package audit

import "time"

// Event is one decision by the proxy.
type Event struct {
	Time      time.Time `json:"time"`
	Proto     string    `json:"proto"`            // "http", "connect" or "socks5"
	Client    string    `json:"client"`           // client address
	Host      string    `json:"host"`             // requested host (normalised when possible)
	Port      uint16    `json:"port"`             // requested port
	Dialed    string    `json:"dialed,omitempty"` // address actually dialled, ip:port
	Decision  string    `json:"decision"`         // "allow" or "deny"
	Reason    string    `json:"reason"`           // policy reason code, or an error code such as "dial-failed"
	Text      string    `json:"text,omitempty"`   // human text
	BytesUp   int64     `json:"bytes_up"`         // client to remote
	BytesDown int64     `json:"bytes_down"`       // remote to client
	Duration  float64   `json:"duration_ms"`      // milliseconds from accept of the request to its end
	Gen       uint64    `json:"gen,omitempty"`    // generation of the live policy that decided (0: the run's first)
	Method    string    `json:"method,omitempty"` // request method, for requests inside inspected hosts
	Path      string    `json:"path,omitempty"`   // request path, for requests inside inspected hosts
}

// Sink receives events. Implementations must be safe for concurrent use.
type Sink interface {
	Record(Event)
}

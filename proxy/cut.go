package proxy

import (
	"context"
	"net/http"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/policy"
)

// askContext returns r's context carrying what a decider is told about the
// request: the protocol and, for a forwarded (inspected) HTTP request, its
// method and path.
func askContext(r *http.Request, proto string) context.Context {
	if proto == "connect" || r.Method == http.MethodConnect {
		return decide.WithRequest(r.Context(), proto, "", "")
	}
	return decide.WithRequest(r.Context(), proto, r.Method, r.URL.Path)
}

// watchLive makes a live policy change cut the open tunnels whose
// destination it denies, until Shutdown ends the watch (stopLive).
func (s *Server) watchLive() {
	s.stopLive = func() {}
	if s.gate == nil || s.gate.Live == nil {
		return
	}
	s.stopLive = s.gate.Live.Watch(func(p *policy.Policy, gen uint64) { s.CutDenied(p, gen) })
}

// CutDenied closes every open tunnel (CONNECT, SOCKS5, transparent) whose
// host and port p now refuses by a deny entry, recording it with reason
// "cut-denied" and generation gen. It returns how many it cut.
func (s *Server) CutDenied(p *policy.Policy, gen uint64) int {
	var victims []*tunnel
	s.mu.Lock()
	for c := range s.conns {
		t, ok := c.(*tunnel)
		if !ok {
			continue
		}
		tgt, err := policy.ParseTarget(t.ev.Host, t.ev.Port)
		if err != nil {
			continue
		}
		if d := p.CheckTarget(tgt); !d.Allow && d.Block == policy.BlockDenylist {
			victims = append(victims, t)
		}
	}
	s.mu.Unlock()
	for _, t := range victims {
		t.cut(gen)
	}
	return len(victims)
}

// cut closes t as denied by a live policy change; it does nothing when t has
// already been closed. The event fields are written inside the tunnel's
// close-once, so that finish (which closes through it too) sees them.
func (t *tunnel) cut(gen uint64) {
	t.closeOnce.Do(func() {
		t.ev.Reason = audit.ReasonCutDenied
		t.ev.Text = t.ev.Host + " is denied by a live policy change; the connection was cut"
		t.ev.Gen = gen
		t.closer.Close()
		t.upstream.Close()
	})
}

// endLiveWatch ends watchLive's watch (Shutdown calls it).
func (s *Server) endLiveWatch() {
	if s.stopLive != nil {
		s.stopLive()
	}
}

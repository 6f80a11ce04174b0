package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// LimitLookups returns a Resolver that runs at most n lookups of r at once;
// a lookup over the limit waits for a turn as long as its context allows.
// Each lookup of Go's own resolver holds sockets while it runs, so a bound
// on lookups is a bound on the descriptors they hold. A nil r means
// net.DefaultResolver; n below 1 means 1.
func LimitLookups(r Resolver, n int) Resolver {
	if r == nil {
		r = net.DefaultResolver
	}
	return &limitedResolver{r: r, turns: make(chan struct{}, max(n, 1))}
}

type limitedResolver struct {
	r     Resolver
	turns chan struct{}
}

func (l *limitedResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	select {
	case l.turns <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a turn to look up %s: %w", host, ctx.Err())
	}
	defer func() { <-l.turns }()
	return l.r.LookupNetIP(ctx, network, host)
}

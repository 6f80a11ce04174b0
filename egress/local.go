package egress

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// localAddrTTL is how long the OS interface addresses are cached.
const localAddrTTL = time.Second

// osLocalAddrs caches net.InterfaceAddrs for every Gate that has no
// LocalAddrs of its own.
var osLocalAddrs = &addrCache{read: readInterfaceAddrs, ttl: localAddrTTL}

// addrCache holds the result of read for ttl. Errors are not cached.
type addrCache struct {
	read func() ([]netip.Addr, error)
	ttl  time.Duration
	now  func() time.Time // nil means time.Now

	mu      sync.Mutex
	addrs   []netip.Addr
	fetched time.Time
	valid   bool
}

// get returns the cached addresses, reading them again when older than ttl.
func (c *addrCache) get() ([]netip.Addr, error) {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := now()
	if c.valid && t.Sub(c.fetched) < c.ttl && !t.Before(c.fetched) {
		return c.addrs, nil
	}
	addrs, err := c.read()
	if err != nil {
		c.valid = false
		return nil, err
	}
	c.addrs, c.fetched, c.valid = addrs, t, true
	return addrs, nil
}

// readInterfaceAddrs lists the addresses of this host's interfaces.
func readInterfaceAddrs() ([]netip.Addr, error) {
	list, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("read interface addresses: %w", err)
	}
	out := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, addr.Unmap())
		}
	}
	return out, nil
}

package setup

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/sandgate/sandgate/ruleplan"
)

// ReservePorts listens on 127.0.0.1 at the first two free ports of the
// installed reserved set, for the run's HTTP and SOCKS5 proxies, in that
// order. The listeners are made so that only sandgate can serve these
// ports (Linux: they carry ruleplan.ProxySocketMark, without which the
// installed rules answer every connection with a reset, and setting it
// needs CAP_NET_ADMIN; Windows: SO_EXCLUSIVEADDRUSE). When every port is
// taken, the *UnavailableError names the setup command that widens the
// range.
func (s *Lease) ReservePorts() ([]net.Listener, error) {
	ports := s.marker.ProxyPorts
	lc := net.ListenConfig{Control: proxyListenControl}
	var got []net.Listener
	for _, p := range ports {
		ln, err := lc.Listen(context.Background(), "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p))))
		if err != nil && portTaken(err) {
			continue
		}
		if err != nil {
			closeListeners(got)
			return nil, fmt.Errorf("listening on reserved proxy port %d: %w", p, err)
		}
		got = append(got, ln)
		if len(got) == 2 {
			return got, nil
		}
	}
	closeListeners(got)
	alb := s.marker.AllowLocalBinding
	return nil, unavailable("all %d reserved proxy ports (%s) are in use: each identity run takes two; widen the range with `%s`",
		len(ports), ruleplan.FormatPorts(ports), FixCommand(false, alb, alb, widerRange(ports)))
}

func closeListeners(ls []net.Listener) {
	for _, ln := range ls {
		ln.Close()
	}
}

// widerRange suggests a port range twice the size of ports, from its
// lowest.
func widerRange(ports []uint16) []uint16 {
	if len(ports) == 0 {
		return DefaultPorts()
	}
	lo := int(ports[0])
	for _, p := range ports {
		lo = min(lo, int(p))
	}
	var out []uint16
	for p := lo; p < lo+2*len(ports) && p <= 65535; p++ {
		out = append(out, uint16(p))
	}
	return out
}

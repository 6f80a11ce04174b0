package setup

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/sandgate/sandgate/ruleplan"
)

// ReservePorts listens on 127.0.0.1 at the first two free ports of the
// installed reserved set, for the run's HTTP and SOCKS5 proxies, in that
// order. The listeners are made so that only sandgate can serve these
// ports (Linux: they carry firewall.ProxySocketMark, without which the
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
		len(ports), formatPorts(ports), FixCommand(false, alb, alb, widerRange(ports)))
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

// formatPorts writes ports as sorted ranges: "47100-47115",
// "3128-3129,8080".
func formatPorts(ports []uint16) string {
	ps, err := ruleplan.NormalizePorts(ports)
	if err != nil {
		ps = ports
	}
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		parts = append(parts, ruleplan.PortRange{Lo: ps[i], Hi: ps[j]}.String())
		i = j + 1
	}
	return strings.Join(parts, ",")
}

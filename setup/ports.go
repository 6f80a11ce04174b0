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

// ReserveLoopbackPair listens at the first free port of the installed
// reserved set on both 127.0.0.1 and [::1] (in that order), made as
// ReservePorts makes its listeners, and returns the port's index in the
// set too. An identity run's transparent path takes two such ports beside
// the proxy's: its transparent listener and its DNS stub (TCP), where its
// rules redirect the offline user's connections (an IPv6 connection is
// redirected to [::1]).
func (s *Lease) ReserveLoopbackPair() (lns []net.Listener, index int, err error) {
	lc := net.ListenConfig{Control: proxyListenControl}
	for i, p := range s.marker.ProxyPorts {
		var got []net.Listener
		for _, host := range []string{"127.0.0.1", "::1"} {
			ln, lerr := lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, strconv.Itoa(int(p))))
			if lerr != nil {
				err = lerr
				break
			}
			got = append(got, ln)
		}
		if len(got) == 2 {
			return got, i, nil
		}
		closeListeners(got)
		if !portTaken(err) {
			return nil, 0, fmt.Errorf("listening on reserved proxy port %d: %w", p, err)
		}
	}
	alb := s.marker.AllowLocalBinding
	ports := s.marker.ProxyPorts
	return nil, 0, unavailable("all %d reserved proxy ports (%s) are in use: an identity run takes two, and two more with the transparent path; widen the range with `%s`",
		len(ports), ruleplan.FormatPorts(ports), FixCommand(false, alb, alb, widerRange(ports)))
}

// ListenLoopbackUDP listens for UDP at port on both 127.0.0.1 and [::1]
// (in that order), made as ReservePorts makes its listeners: the UDP side
// of an identity run's DNS stub, at the port ReserveLoopbackPair gave it,
// where the run's rules redirect the offline user's queries (setup's rules
// let such redirected UDP through to a reserved port, and nothing else).
func (s *Lease) ListenLoopbackUDP(port uint16) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: proxyListenControl}
	var got []net.PacketConn
	for _, host := range []string{"127.0.0.1", "::1"} {
		pc, err := lc.ListenPacket(context.Background(), "udp", net.JoinHostPort(host, strconv.Itoa(int(port))))
		if err != nil {
			for _, c := range got {
				c.Close()
			}
			return nil, fmt.Errorf("listening for UDP on reserved port %d: %w", port, err)
		}
		got = append(got, pc)
	}
	return got, nil
}

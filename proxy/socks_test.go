package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandgate/sandgate/audit"
)

func TestSOCKSConnect(t *testing.T) {
	e := newEnv(t)
	port4 := echoServer(t, "tcp4", "127.0.0.1:0")
	tests := []struct {
		name, host string
		port       uint16
		ipv6       bool
	}{
		{"domain", "allowed.test", port4, false},
		{"domain upper case with trailing dot", "ALLOWED.test.", port4, false},
		{"IPv4", "127.0.0.1", port4, false},
		{"IPv6", "::1", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ipv6 {
				if !ipv6Available() {
					t.Skip("no IPv6 loopback")
				}
				tt.port = echoServer(t, "tcp6", "[::1]:0")
			}
			s := e.socks(t)
			// The bound address is the proxy's side of the upstream connection.
			rep, bound := s.connect(tt.host, tt.port)
			if rep != repSucceeded {
				t.Fatalf("reply %d, want success", rep)
			}
			if !bound.IsValid() || bound.Port() == 0 {
				t.Errorf("bound address %v, want an address with a port", bound)
			}
			echoCheck(t, s.c, "socks says hi")
			e.tunnelsAreTCP(t)
			s.c.(*net.TCPConn).CloseWrite()
			if rest, err := io.ReadAll(s.c); err != nil || len(rest) != 0 {
				t.Fatalf("after half-close: %q %v", rest, err)
			}
			host := strings.ToLower(strings.TrimSuffix(tt.host, "."))
			ev := e.log.wait(t, host, tt.port)
			if ev.Proto != "socks5" || ev.Decision != "allow" || ev.BytesUp != 13 || ev.BytesDown != 13 {
				t.Errorf("event %+v", ev)
			}
		})
	}
}

func TestSOCKSRefusals(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, host string
		want       byte
		reason     string
	}{
		{"denied name", "denied.test", repNotAllowed, "denied"},
		{"name not allowed", "other.test", repNotAllowed, "not-allowed"},
		{"IPv4 literal not allowed", "192.0.2.7", repNotAllowed, "not-allowed"},
		{"IPv6 literal not allowed", "2001:db8::7", repNotAllowed, "not-allowed"},
		{"name resolving to loopback", "loopy.test", repNotAllowed, "address-class:loopback"},
		{"IPv4 literal in a domain field", "127.0.0.2", repNotAllowed, ""},
		{"mapped loopback", "::ffff:127.0.0.2", repNotAllowed, ""},
		{"numeric name", "0x7f.1", repNotAllowed, "numeric-name"},
		{"name with a NUL", "allowed.test\x00.evil", repNotAllowed, "invalid-host"},
		{"name that does not resolve", "nowhere.test", repHostUnreachable, "resolve-failed"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := uint16(1000 + i)
			s := e.socks(t)
			// Domain-typed on purpose for names; literals go typed.
			if got, _ := s.connect(tt.host, port); got != tt.want {
				t.Fatalf("reply %d, want %d", got, tt.want)
			}
			if !s.closed() {
				t.Error("connection left open after a refusal")
			}
			var ev audit.Event
			for _, x := range e.log.all() {
				if x.Port == port {
					ev = x
				}
			}
			if ev.Decision != "deny" || (tt.reason != "" && ev.Reason != tt.reason) {
				t.Errorf("event %+v, want deny %q", ev, tt.reason)
			}
		})
	}
	for _, name := range []string{"denied.test", "other.test"} {
		if e.lookedUp(name) {
			t.Errorf("refused name %s reached the resolver", name)
		}
	}
}

func TestSOCKSUnsupportedAndMalformed(t *testing.T) {
	e := newEnv(t)
	noAuth := []byte{5, 1, 0}
	tests := []struct {
		name      string
		send      []byte
		wantBytes []byte // exact bytes expected before close
	}{
		{"BIND", append(append([]byte{}, noAuth...), socksRequestBytes(cmdBind, "allowed.test", 80)...),
			[]byte{5, 0, 5, repCmdNotSupported, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"UDP ASSOCIATE", append(append([]byte{}, noAuth...), socksRequestBytes(cmdUDP, "127.0.0.1", 0)...),
			[]byte{5, 0, 5, repCmdNotSupported, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"unknown command", append(append([]byte{}, noAuth...), socksRequestBytes(9, "allowed.test", 80)...),
			[]byte{5, 0, 5, repCmdNotSupported, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"unknown address type", append(append([]byte{}, noAuth...), 5, 1, 0, 9, 1, 2, 3, 4),
			[]byte{5, 0, 5, repAtypNotSupported, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"request version 4", append(append([]byte{}, noAuth...), 4, 1, 0, 1, 127, 0, 0, 1, 0, 80),
			[]byte{5, 0, 5, repGeneralFailure, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"empty domain", append(append([]byte{}, noAuth...), 5, 1, 0, 3, 0, 0, 80),
			[]byte{5, 0, 5, repGeneralFailure, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"port 0", append(append([]byte{}, noAuth...), socksRequestBytes(cmdConnect, "allowed.test", 0)...),
			[]byte{5, 0, 5, repGeneralFailure, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"SOCKS4 greeting", []byte{4, 1, 0, 80, 127, 0, 0, 1, 0}, nil},
		{"no methods", []byte{5, 0}, []byte{5, 0xFF}},
		{"only an unknown method", []byte{5, 1, 0x80}, []byte{5, 0xFF}},
		{"HTTP on the SOCKS port", []byte("GET / HTTP/1.1\r\n\r\n"), nil},
		{"bad auth version", []byte{5, 1, 2, 9, 1, 'u', 1, 'p'}, []byte{5, 2, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := e.socks(t)
			s.write(tt.send...)
			s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(s.c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection not closed; got %v", got)
			}
			if !bytes.Equal(got, tt.wantBytes) {
				t.Errorf("got %v, want %v", got, tt.wantBytes)
			}
		})
	}
	if len(e.resolver.Lookups()) != 0 {
		t.Errorf("unsupported requests reached the resolver: %v", e.resolver.Lookups())
	}
}

func TestSOCKSTruncatedAndTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.HeaderTimeout = 100 * time.Millisecond })
	for _, partial := range [][]byte{{}, {5}, {5, 2, 0}, {5, 1, 0, 5, 1, 0, 3, 20, 'a'}} {
		s := e.socks(t)
		s.write(partial...)
		start := time.Now()
		s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(s.c)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("partial %v: closed after %v, want about 100ms", partial, d)
		}
	}
}

func TestSOCKSCredentials(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Credentials = &Credentials{User: "user", Password: "pass"} })
	port := echoServer(t, "tcp4", "127.0.0.1:0")
	auth := func(u, p string) []byte {
		b := []byte{1, byte(len(u))}
		b = append(b, u...)
		b = append(b, byte(len(p)))
		return append(b, p...)
	}

	t.Run("no-auth refused", func(t *testing.T) {
		s := e.socks(t)
		s.write(5, 1, methodNoAuth)
		if got := s.read(2); !bytes.Equal(got, []byte{5, 0xFF}) {
			t.Fatalf("got %v, want [5 255]", got)
		}
		if !s.closed() {
			t.Error("not closed")
		}
	})
	for _, tt := range []struct{ name, user, pass string }{
		{"wrong password", "user", "nope"},
		{"wrong user", "resu", "pass"},
		{"empty", "", ""},
		{"prefix", "user", "pas"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := e.socks(t)
			s.write(5, 2, methodNoAuth, methodUserPass)
			if got := s.read(2); !bytes.Equal(got, []byte{5, 2}) {
				t.Fatalf("method selection %v, want [5 2]", got)
			}
			s.write(auth(tt.user, tt.pass)...)
			if got := s.read(2); got[0] != 1 || got[1] == 0 {
				t.Fatalf("auth reply %v, want failure", got)
			}
			if !s.closed() {
				t.Error("not closed after failed authentication")
			}
		})
	}
	t.Run("right", func(t *testing.T) {
		s := e.socks(t)
		s.write(5, 2, methodNoAuth, methodUserPass)
		s.read(2)
		s.write(auth("user", "pass")...)
		if got := s.read(2); !bytes.Equal(got, []byte{1, 0}) {
			t.Fatalf("auth reply %v, want [1 0]", got)
		}
		if rep := s.send(cmdConnect, "allowed.test", port); rep != repSucceeded {
			t.Fatalf("reply %d", rep)
		}
		echoCheck(t, s.c, "with credentials")
	})
}

func TestSOCKSNoCredentialsAcceptsUserPass(t *testing.T) {
	e := newEnv(t)
	s := e.socks(t)
	s.write(5, 1, methodUserPass)
	if got := s.read(2); !bytes.Equal(got, []byte{5, 2}) {
		t.Fatalf("method selection %v", got)
	}
	s.write(1, 1, 'x', 1, 'y')
	if got := s.read(2); !bytes.Equal(got, []byte{1, 0}) {
		t.Fatalf("auth reply %v, want success when no credentials are configured", got)
	}
	if rep := s.send(cmdConnect, "denied.test", 80); rep != repNotAllowed {
		t.Fatalf("reply %d", rep)
	}
}

func TestSOCKSDialFailure(t *testing.T) {
	ln := listen(t, "tcp4", "127.0.0.1:0")
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	e := newEnv(t)
	s := e.socks(t)
	if rep, _ := s.connect("allowed.test", port); rep != repConnectionRefused {
		t.Fatalf("reply %d, want %d (connection refused)", rep, repConnectionRefused)
	}
	ev := e.log.wait(t, "allowed.test", port)
	if ev.Decision != "allow" || ev.Reason != audit.ReasonDialFailed {
		t.Errorf("event %+v", ev)
	}
}

func TestReadSOCKSRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    socksRequest
		wantRep byte // reply code of the error; 255 means no error expected
	}{
		{"ipv4", []byte{5, 1, 0, 1, 192, 0, 2, 1, 1, 187}, socksRequest{cmd: 1, atyp: 1, host: "192.0.2.1", port: 443}, 255},
		{"ipv6", append(append([]byte{5, 1, 0, 4}, net.ParseIP("2001:db8::1")...), 0, 80), socksRequest{cmd: 1, atyp: 4, host: "2001:db8::1", port: 80}, 255},
		{"mapped ipv6 stays mapped", append(append([]byte{5, 1, 0, 4}, net.ParseIP("::ffff:127.0.0.1").To16()...), 0, 80), socksRequest{cmd: 1, atyp: 4, host: "::ffff:127.0.0.1", port: 80}, 255},
		{"domain", append([]byte{5, 1, 0, 3, 6}, "a.test\x00\x50"...), socksRequest{cmd: 1, atyp: 3, host: "a.test", port: 80}, 255},
		{"bind parsed", []byte{5, 2, 0, 1, 192, 0, 2, 1, 0, 0}, socksRequest{cmd: 2, atyp: 1, host: "192.0.2.1", port: 0}, 255},
		{"bad version", []byte{4, 1, 0, 1, 192, 0, 2, 1, 0, 80}, socksRequest{}, repGeneralFailure},
		{"bad atyp", []byte{5, 1, 0, 2, 0, 0}, socksRequest{}, repAtypNotSupported},
		{"truncated ipv4", []byte{5, 1, 0, 1, 192, 0}, socksRequest{}, repGeneralFailure},
		{"truncated domain", []byte{5, 1, 0, 3, 10, 'a'}, socksRequest{}, repGeneralFailure},
		{"missing port", []byte{5, 1, 0, 3, 1, 'a', 0}, socksRequest{}, repGeneralFailure},
		{"empty", nil, socksRequest{}, repGeneralFailure},
		{"port zero", []byte{5, 1, 0, 1, 192, 0, 2, 1, 0, 0}, socksRequest{}, repGeneralFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSOCKSRequest(bytes.NewReader(tt.in))
			if tt.wantRep == 255 {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if got != tt.want {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			var se *socksError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a socksError", err)
			}
			if se.reply != tt.wantRep {
				t.Errorf("reply %d, want %d (%v)", se.reply, tt.wantRep, err)
			}
		})
	}
}

func TestAppendSOCKSReply(t *testing.T) {
	tests := []struct {
		name string
		bind net.Addr
		want []byte
	}{
		{"nil", nil, []byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"ipv4", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 3), Port: 258}, []byte{5, 0, 0, 1, 192, 0, 2, 3, 1, 2}},
		{"ipv6", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, append(append([]byte{5, 0, 0, 4}, net.ParseIP("2001:db8::1")...), 0, 1)},
		{"not tcp", &net.UnixAddr{Name: "x", Net: "unix"}, []byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		if got := appendSOCKSReply(nil, 0, tt.bind); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDialReply(t *testing.T) {
	tests := []struct {
		err  error
		want byte
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, repConnectionRefused},
		{&net.DNSError{Err: "no such host", Name: "x.test"}, repHostUnreachable},
		{&net.OpError{Op: "dial", Err: timeoutErr{}}, repHostUnreachable},
		{errors.New("something else"), repGeneralFailure},
	}
	for _, tt := range tests {
		if got := dialReply(tt.err); got != tt.want {
			t.Errorf("dialReply(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

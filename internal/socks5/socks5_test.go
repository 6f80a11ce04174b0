package socks5

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// scripted plays the proxy's side of one exchange on a pipe: it expects the
// client to send want (in order, in any pieces) and answers with the
// replies, each after the matching part. It reports the first difference.
type step struct {
	expect []byte
	answer []byte
}

func runScript(t *testing.T, steps []step) (client net.Conn, done <-chan error) {
	t.Helper()
	c, s := net.Pipe()
	ch := make(chan error, 1)
	go func() {
		defer s.Close()
		s.SetDeadline(time.Now().Add(5 * time.Second))
		for i, st := range steps {
			got := make([]byte, len(st.expect))
			if _, err := io.ReadFull(s, got); err != nil {
				ch <- err
				return
			}
			if !bytes.Equal(got, st.expect) {
				ch <- fmt.Errorf("step %d: client sent %v, want %v", i, got, st.expect)
				return
			}
			if _, err := s.Write(st.answer); err != nil {
				ch <- err
				return
			}
		}
		ch <- nil
	}()
	t.Cleanup(func() { c.Close() })
	return c, ch
}

func TestHandshake(t *testing.T) {
	connect := func(host string, port uint16) []byte {
		b, err := AppendRequest(nil, CmdConnect, host, port)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	okV4 := []byte{5, 0, 0, 1, 192, 0, 2, 9, 0x1f, 0x90}
	tests := []struct {
		name    string
		auth    *Auth
		steps   []step
		bound   string
		wantErr string
		code    byte // ReplyError code wanted, 0 for none
	}{
		{name: "no auth", steps: []step{{[]byte{5, 1, 0}, []byte{5, 0}}, {connect("a.test", 22), okV4}}, bound: "192.0.2.9:8080"},
		{name: "user and password", auth: &Auth{User: "u", Password: "pw"},
			steps: []step{{[]byte{5, 1, 2}, []byte{5, 2}}, {[]byte{1, 1, 'u', 2, 'p', 'w'}, []byte{1, 0}}, {connect("2001:db8::1", 443), okV4}}, bound: "192.0.2.9:8080"},
		{name: "bound name", steps: []step{{[]byte{5, 1, 0}, []byte{5, 0}}, {connect("a.test", 22), []byte{5, 0, 0, 3, 2, 'h', 'i', 0, 1}}}, bound: "invalid AddrPort"},
		{name: "bound IPv6", steps: []step{{[]byte{5, 1, 0}, []byte{5, 0}}, {connect("a.test", 22), append(append([]byte{5, 0, 0, 4}, netip.MustParseAddr("2001:db8::2").AsSlice()...), 0, 80)}}, bound: "[2001:db8::2]:80"},
		{name: "method refused", steps: []step{{[]byte{5, 1, 0}, []byte{5, 0xFF}}}, wantErr: "authentication method refused (reply 5 255)"},
		{name: "wrong password", auth: &Auth{User: "u", Password: "x"},
			steps: []step{{[]byte{5, 1, 2}, []byte{5, 2}}, {[]byte{1, 1, 'u', 1, 'x'}, []byte{1, 1}}}, wantErr: "authentication failed"},
		{name: "refused by ruleset", steps: []step{{[]byte{5, 1, 0}, []byte{5, 0}}, {connect("evil.test", 22), []byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}}},
			wantErr: "CONNECT evil.test:22: connection not allowed by ruleset", code: 2},
		{name: "refusal without an address", steps: []step{{[]byte{5, 1, 0}, []byte{5, 0}}, {connect("evil.test", 22), []byte{5, 5, 0, 1}}},
			wantErr: "CONNECT evil.test:22: connection refused", code: 5},
		{name: "unknown reply code", steps: []step{{[]byte{5, 1, 0}, []byte{5, 0}}, {connect("x.test", 1), []byte{5, 42, 0, 1, 0, 0, 0, 0, 0, 0}}},
			wantErr: "CONNECT x.test:1: reply 42", code: 42},
		{name: "bad address type", steps: []step{{[]byte{5, 1, 0}, []byte{5, 0}}, {connect("x.test", 1), []byte{5, 0, 0, 9}}}, wantErr: "bad address type 9 in reply"},
		{name: "closed early", steps: []step{{[]byte{5, 1, 0}, []byte{5}}}, wantErr: "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, done := runScript(t, tt.steps)
			host, port := "a.test", uint16(22)
			if last := tt.steps[len(tt.steps)-1].expect; len(last) > 3 && last[0] == Version && last[1] == CmdConnect {
				host, port = hostPortOf(t, last)
			}
			bound, err := Handshake(c, host, port, tt.auth)
			c.Close()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Handshake: %v", err)
				}
				if bound.String() != tt.bound {
					t.Errorf("bound %s, want %s", bound, tt.bound)
				}
				if serr := <-done; serr != nil {
					t.Errorf("script: %v", serr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			var re *ReplyError
			if got := errors.As(err, &re); got != (tt.code != 0) || (got && re.Code != tt.code) {
				t.Errorf("ReplyError %v (%+v), want code %d", got, re, tt.code)
			}
		})
	}
}

// hostPortOf decodes a request built by AppendRequest.
func hostPortOf(t *testing.T, req []byte) (string, uint16) {
	t.Helper()
	p := uint16(req[len(req)-2])<<8 | uint16(req[len(req)-1])
	switch req[3] {
	case AtypDomain:
		return string(req[5 : len(req)-2]), p
	default:
		a, _ := netip.AddrFromSlice(req[4 : len(req)-2])
		return a.String(), p
	}
}

func TestAppendRequest(t *testing.T) {
	tests := []struct {
		host string
		want []byte
	}{
		{"192.0.2.1", []byte{5, 1, 0, 1, 192, 0, 2, 1, 0, 80}},
		{"2001:db8::1", append(append([]byte{5, 1, 0, 4}, netip.MustParseAddr("2001:db8::1").AsSlice()...), 0, 80)},
		{"::ffff:127.0.0.2", append(append([]byte{5, 1, 0, 4}, netip.MustParseAddr("::ffff:127.0.0.2").AsSlice()...), 0, 80)},
		{"fe80::1%eth0", append([]byte{5, 1, 0, 3, 12}, "fe80::1%eth0\x00\x50"...)},
		{"example.test", append([]byte{5, 1, 0, 3, 12}, "example.test\x00\x50"...)},
		{"0x7f.1", append([]byte{5, 1, 0, 3, 6}, "0x7f.1\x00\x50"...)},
	}
	for _, tt := range tests {
		got, err := AppendRequest(nil, CmdConnect, tt.host, 80)
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("AppendRequest(%q) = %v, %v; want %v", tt.host, got, err, tt.want)
		}
	}
	if _, err := AppendRequest(nil, CmdConnect, strings.Repeat("a", 256), 80); err == nil {
		t.Error("a 256-byte name was accepted")
	}
	if got, _ := AppendRequest([]byte{9}, CmdUDPAssociate, "192.0.2.1", 0); !bytes.Equal(got, []byte{9, 5, 3, 0, 1, 192, 0, 2, 1, 0, 0}) {
		t.Errorf("append to a prefix with another command: %v", got)
	}
}

func TestDial(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [3]byte
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				if b[2] == MethodUserPass {
					return // never answers: the caller's deadline must end it
				}
				c.Write([]byte{5, 0})
				req := make([]byte, 4+1+6+2)
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 9})
				io.Copy(c, c)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, ln.Addr().String(), "a.test", 1, nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("echo"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "echo" {
		t.Fatalf("after Dial: %q %v", got, err)
	}
	c.Close()

	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err = Dial(short, ln.Addr().String(), "a.test", 1, &Auth{User: "u", Password: "p"})
	if err == nil || !strings.HasPrefix(err.Error(), "SOCKS5 proxy "+ln.Addr().String()+": ") {
		t.Fatalf("Dial to a silent proxy: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Dial gave up after %v, want about 200ms", d)
	}
	closed, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	if _, err := Dial(ctx, closedAddr, "a.test", 1, nil); err == nil || !strings.HasPrefix(err.Error(), "connecting to SOCKS5 proxy "+closedAddr+": ") {
		t.Errorf("Dial to a closed port: %v", err)
	}
	if _, err := Dial(ctx, ln.Addr().String(), strings.Repeat("a", 300), 1, nil); err == nil || err.Error() != "host name too long for SOCKS5: 300 bytes" {
		t.Errorf("Dial with a long name: %v", err)
	}
}

func FuzzReadReply(f *testing.F) {
	f.Add([]byte{5, 0, 0, 1, 192, 0, 2, 1, 0, 80})
	f.Add([]byte{5, 2, 0, 3, 2, 'h', 'i', 0, 1})
	f.Add([]byte{5, 0, 0, 4})
	f.Add([]byte{4, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		code, bound, err := ReadReply(r)
		if len(data) >= 4 && code != data[1] {
			t.Fatalf("code %d, want %d", code, data[1])
		}
		if err == nil {
			used := len(data) - r.Len()
			want := map[byte]int{AtypIPv4: 10, AtypIPv6: 22, AtypDomain: 7}[data[3]]
			if data[3] == AtypDomain {
				want += int(data[4])
			}
			if used != want || data[0] != Version {
				t.Fatalf("accepted a %d-byte reply %v", used, data)
			}
			if (data[3] == AtypDomain) == bound.IsValid() {
				t.Fatalf("bound %v for address type %d", bound, data[3])
			}
		}
	})
}

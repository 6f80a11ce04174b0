package control

import (
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	cases := []struct {
		line    string
		want    Request
		wantErr string
	}{
		{"show", Request{Op: OpShow}, ""},
		{"show\n", Request{Op: OpShow}, ""},
		{"show\r\n", Request{Op: OpShow}, ""},
		{"show ", Request{Op: OpShow}, ""},
		{"allow example.com", Request{Op: OpAllow, Entry: "example.com"}, ""},
		{"allow   example.com:443  \n", Request{Op: OpAllow, Entry: "example.com:443"}, ""},
		{"deny *.example.com", Request{Op: OpDeny, Entry: "*.example.com"}, ""},
		{"allow GET,HEAD example.com/api", Request{Op: OpAllow, Entry: "GET,HEAD example.com/api"}, ""},
		{"deny [2001:db8::1]:443", Request{Op: OpDeny, Entry: "[2001:db8::1]:443"}, ""},
		{"", Request{}, "empty request"},
		{"\n", Request{}, "empty request"},
		{"allow", Request{}, "allow needs an entry"},
		{"allow   ", Request{}, "allow needs an entry"},
		{"deny\n", Request{}, "deny needs an entry"},
		{"show all", Request{}, "show takes nothing"},
		{"ALLOW example.com", Request{}, "unknown request \"ALLOW\""},
		{"reload", Request{}, "unknown request"},
		{" allow example.com", Request{}, "starts with a space"},
		{"allow exa\tmple.com", Request{}, "control character"},
		{"allow a\x00b", Request{}, "control character"},
		{"allow a\rb", Request{}, "control character"},
		{"allow a\n\n", Request{}, "control character"},
		{"allow \xff", Request{}, "not UTF-8"},
		{"allow " + strings.Repeat("a", MaxLine), Request{}, "longer than"},
	}
	for _, c := range cases {
		got, err := ParseRequest([]byte(c.line))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseRequest(%q) = %+v, %v; want an error with %q", c.line, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseRequest(%q) = %+v, %v; want %+v", c.line, got, err, c.want)
		}
	}
}

func TestRequestString(t *testing.T) {
	for _, r := range []Request{{Op: OpShow}, {Op: OpAllow, Entry: "example.com"}, {Op: OpDeny, Entry: "GET example.com/x"}} {
		got, err := ParseRequest([]byte(r.String()))
		if err != nil || got != r {
			t.Errorf("ParseRequest(%q) = %+v, %v; want %+v", r.String(), got, err, r)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	cases := []Response{
		{OK: true, Gen: 3},
		{OK: true, Gen: 0, Run: "abc", PID: 12, Command: []string{"sh", "-c", "x"}, Allow: []string{"a.test"}, Deny: []string{"b.test"}},
		{Gen: 2, Error: "live policy: invalid allow entry", Kind: KindEntry},
	}
	for _, r := range cases {
		b := EncodeResponse(r)
		if n := strings.Count(string(b), "\n"); n != 1 || b[len(b)-1] != '\n' {
			t.Errorf("EncodeResponse(%+v) = %q: want one line", r, b)
		}
		got, err := DecodeResponse(b)
		if err != nil {
			t.Fatalf("DecodeResponse(%q): %v", b, err)
		}
		if got.OK != r.OK || got.Gen != r.Gen || got.Error != r.Error || got.Kind != r.Kind || got.Run != r.Run ||
			got.PID != r.PID || strings.Join(got.Command, " ") != strings.Join(r.Command, " ") ||
			strings.Join(got.Allow, ",") != strings.Join(r.Allow, ",") || strings.Join(got.Deny, ",") != strings.Join(r.Deny, ",") {
			t.Errorf("round trip of %+v gave %+v", r, got)
		}
	}
}

func TestDecodeResponseMalformed(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "malformed response"},
		{"not json", "malformed response"},
		{`{"ok":false}`, "refused without an error"},
		{`{"ok":true}{"ok":true}`, "more than one JSON value"},
		{`{"ok":"yes"}`, "malformed response"},
		{`[1,2]`, "malformed response"},
		{`{"ok":true,"gen":-1}`, "malformed response"},
		{`{"ok":true,"gen":1` + strings.Repeat(" ", MaxResponse) + `}`, "longer than"},
	}
	for _, c := range cases {
		if _, err := DecodeResponse([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeResponse(%.40q) = %v; want an error with %q", c.in, err, c.want)
		}
	}
	// Unknown fields are ignored: a newer server may say more.
	r, err := DecodeResponse([]byte(`{"ok":true,"gen":4,"later":"x"}`))
	if err != nil || !r.OK || r.Gen != 4 {
		t.Errorf("a response with an unknown field: %+v, %v", r, err)
	}
}

func TestCheckRunID(t *testing.T) {
	good := []string{"a", "0123456789ab", "ci-job_7.retry", strings.Repeat("x", MaxRunID)}
	bad := []string{"", ".hidden", "-x", "a/b", "a b", "../x", "ü", strings.Repeat("x", MaxRunID+1), "x.sock\n"}
	for _, id := range good {
		if err := CheckRunID(id); err != nil {
			t.Errorf("CheckRunID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range bad {
		if err := CheckRunID(id); err == nil {
			t.Errorf("CheckRunID(%q) = nil, want an error", id)
		}
	}
	id, err := NewRunID()
	if err != nil || CheckRunID(id) != nil || len(id) != 12 {
		t.Errorf("NewRunID() = %q, %v", id, err)
	}
	if id2, _ := NewRunID(); id2 == id {
		t.Errorf("two NewRunID calls gave %q", id)
	}
}

// FuzzControlRequest checks that any line either parses into a request
// that prints back to a line parsing the same, or is refused; never a
// panic, never an entry with a control character or surrounding spaces.
func FuzzControlRequest(f *testing.F) {
	for _, s := range []string{"show", "allow example.com", "deny *.x.test:443\r\n", "allow GET x.test/a b", "allow \x00", "", "deny  ", "allow \xc3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRequest(line)
		if err != nil {
			if r != (Request{}) {
				t.Fatalf("an error came with a request %+v", r)
			}
			return
		}
		if r.Op != OpShow && (r.Entry == "" || strings.TrimSpace(r.Entry) != r.Entry && strings.Trim(r.Entry, " ") != r.Entry) {
			t.Fatalf("entry %q of %q", r.Entry, line)
		}
		for _, c := range r.Entry {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("entry %q has a control character", r.Entry)
			}
		}
		again, err := ParseRequest([]byte(r.String() + "\n"))
		if err != nil || again != r {
			t.Fatalf("%q parsed to %+v, which prints as %q, parsing to %+v, %v", line, r, r.String(), again, err)
		}
	})
}

// FuzzControlResponse checks that decoding any bytes never panics and that
// a decoded response encodes and decodes to itself.
func FuzzControlResponse(f *testing.F) {
	for _, s := range []string{`{"ok":true,"gen":1}`, `{"ok":false,"error":"x","kind":"entry"}`, `{"ok":true,"allow":["a"],"command":["sh"]}`, `null`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err != nil {
			return
		}
		again, err := DecodeResponse(EncodeResponse(r))
		if err != nil || again.OK != r.OK || again.Gen != r.Gen || again.Error != r.Error {
			t.Fatalf("%q decoded to %+v, re-decoded to %+v, %v", b, r, again, err)
		}
	})
}

package decide

import (
	"strings"
	"testing"
)

func TestDecodeAnswer(t *testing.T) {
	cases := []struct {
		name string
		body string
		want Answer
		err  string // a substring of the error; "" means no error
	}{
		{"allow run", `{"decision":"allow","scope":"run"}`, Answer{Allow: true, Scope: ScopeRun}, ""},
		{"allow once", `{"decision":"allow","scope":"once"}`, Answer{Allow: true, Scope: ScopeOnce}, ""},
		{"allow without scope is once", `{"decision":"allow"}`, Answer{Allow: true, Scope: ScopeOnce}, ""},
		{"deny", `{"decision":"deny"}`, Answer{}, ""},
		{"deny with scope", `{"scope":"run","decision":"deny"}`, Answer{Scope: ScopeRun}, ""},
		{"whitespace around", " \n{ \"decision\" : \"deny\" }\n ", Answer{}, ""},
		{"empty body", ``, Answer{}, "want one JSON object"},
		{"not an object", `["allow"]`, Answer{}, "want one JSON object"},
		{"bare string", `"allow"`, Answer{}, "want one JSON object"},
		{"empty object", `{}`, Answer{}, `no "decision"`},
		{"unknown decision", `{"decision":"yes"}`, Answer{}, `decision "yes"`},
		{"decision in upper case", `{"decision":"ALLOW"}`, Answer{}, `decision "ALLOW"`},
		{"unknown scope", `{"decision":"allow","scope":"forever"}`, Answer{}, `scope "forever"`},
		{"unknown scope on deny", `{"decision":"deny","scope":"x"}`, Answer{}, `scope "x"`},
		{"extra field", `{"decision":"allow","scope":"run","why":"ok"}`, Answer{}, `unknown field "why"`},
		{"key in another case", `{"Decision":"allow"}`, Answer{}, `unknown field "Decision"`},
		{"repeated key", `{"decision":"deny","decision":"allow"}`, Answer{}, `appears twice`},
		{"boolean value", `{"decision":true}`, Answer{}, "must be a string"},
		{"null value", `{"decision":null}`, Answer{}, "must be a string"},
		{"object value", `{"decision":{"v":"allow"}}`, Answer{}, "must be a string"},
		{"number scope", `{"decision":"allow","scope":1}`, Answer{}, "must be a string"},
		{"trailing object", `{"decision":"deny"}{"decision":"allow"}`, Answer{}, "data after"},
		{"trailing garbage", `{"decision":"allow"} x`, Answer{}, "malformed answer"},
		{"truncated", `{"decision":"allow"`, Answer{}, "malformed answer"},
		{"missing colon", `{"decision" "allow"}`, Answer{}, "malformed answer"},
		{"huge unknown field", `{"decision":"allow","pad":"` + strings.Repeat("a", 1<<20) + `"}`, Answer{}, `unknown field "pad"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeAnswer([]byte(c.body))
			if c.err == "" {
				if err != nil || got != c.want {
					t.Fatalf("DecodeAnswer = %+v, %v; want %+v", got, err, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("DecodeAnswer error = %v, want one containing %q", err, c.err)
			}
			if got.Allow {
				t.Fatalf("an error came with an allow: %+v", got)
			}
		})
	}
}

func TestEncodeQuestion(t *testing.T) {
	cases := []struct {
		q    Question
		want string
	}{
		{Question{Run: "r1", Protocol: "connect", Host: "example.com", Port: 443},
			`{"run":"r1","protocol":"connect","host":"example.com","port":443}`},
		{Question{Run: "r1", Protocol: "http", Host: "example.com", Port: 80, Method: "GET", Path: "/a b"},
			`{"run":"r1","protocol":"http","host":"example.com","port":80,"method":"GET","path":"/a b"}`},
		{Question{Protocol: "socks5", Host: "2001:db8::1", Port: 22},
			`{"run":"","protocol":"socks5","host":"2001:db8::1","port":22}`},
	}
	for _, c := range cases {
		if got := string(EncodeQuestion(c.q)); got != c.want {
			t.Errorf("EncodeQuestion(%+v) = %s, want %s", c.q, got, c.want)
		}
	}
}

func TestQuestionString(t *testing.T) {
	cases := []struct {
		q    Question
		want string
	}{
		{Question{Host: "example.com", Port: 443}, "example.com:443"},
		{Question{Host: "203.0.113.7", Port: 80}, "203.0.113.7:80"},
		{Question{Host: "2001:db8::1", Port: 22}, "[2001:db8::1]:22"},
		{Question{Host: "", Port: 1}, ":1"},
	}
	for _, c := range cases {
		if got := c.q.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.q, got, c.want)
		}
	}
}

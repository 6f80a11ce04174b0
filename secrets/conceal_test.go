package secrets

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

func TestConcealReader(t *testing.T) {
	s := testSet(t)
	gh, key := placeholderOf(t, s, "GITHUB_TOKEN"), placeholderOf(t, s, "API_KEY")
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{ghValue, gh},
		{`{"token":"` + ghValue + `","key":"` + keyValue + `"}`, `{"token":"` + gh + `","key":"` + key + `"}`},
		{ghValue + ghValue + keyValue, gh + gh + key},
		{strings.Repeat("x", 70000) + ghValue + strings.Repeat("y", 33000) + keyValue, strings.Repeat("x", 70000) + gh + strings.Repeat("y", 33000) + key},
		{ghValue[:10], ghValue[:10]},
		{"ends with a partial " + ghValue[:len(ghValue)-1], "ends with a partial " + ghValue[:len(ghValue)-1]},
	}
	for i, tt := range tests {
		for _, mk := range []func(string) io.Reader{
			func(s string) io.Reader { return strings.NewReader(s) },
			func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
			func(s string) io.Reader { return chunkReader{strings.NewReader(s), 7} },
			func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
		} {
			got, err := io.ReadAll(s.ConcealReader(mk(tt.in)))
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			if string(got) != tt.want {
				t.Errorf("case %d: got %d bytes %.60q…, want %.60q…", i, len(got), got, tt.want)
			}
			if len(got) != len(tt.in) {
				t.Errorf("case %d: length changed from %d to %d", i, len(tt.in), len(got))
			}
		}
	}
	// A source error after some bytes is returned after those bytes.
	r := s.ConcealReader(iotest.TimeoutReader(chunkReader{strings.NewReader(ghValue + "tail"), 8}))
	b, err := io.ReadAll(r)
	if err != iotest.ErrTimeout || string(b) != ghValue[:8] {
		t.Errorf("after a source error: %q, %v", b, err)
	}
}

func TestConcealHeader(t *testing.T) {
	s := testSet(t)
	gh := placeholderOf(t, s, "GITHUB_TOKEN")
	h := http.Header{"Location": {"https://github.com/login?access_token=" + ghValue}, "X-Echo": {"a", "Bearer " + ghValue}}
	s.ConcealHeader(h)
	if h.Get("Location") != "https://github.com/login?access_token="+gh || h.Values("X-Echo")[1] != "Bearer "+gh || h.Values("X-Echo")[0] != "a" {
		t.Errorf("ConcealHeader: %q", h)
	}
}

// FuzzConceal checks the streaming reader against Conceal on the whole
// text, for any text (with values put in) and any read size.
func FuzzConceal(f *testing.F) {
	f.Add("abc", 1, 3)
	f.Add("", 5, 0)
	f.Add("x"+ghValue[:5], 2, 1)
	s, err := New(testRand(2),
		Binding{Name: "A", Value: ghValue, Hosts: mustHosts("a.example.com")},
		Binding{Name: "B", Value: ghValue[:20] + "-zz", Hosts: mustHosts("b.example.com")})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string, chunk, insert int) {
		if chunk <= 0 || chunk > 1<<16 {
			chunk = 1 + (chunk&0xff+0xff)%0xff
		}
		if insert&1 != 0 {
			text += ghValue
		}
		if insert&2 != 0 {
			text = ghValue[:20] + "-zz" + text
		}
		got, err := io.ReadAll(s.ConcealReader(chunkReader{strings.NewReader(text), chunk}))
		if err != nil {
			t.Fatal(err)
		}
		if want := s.Conceal(text); string(got) != want {
			t.Fatalf("chunk %d: reader %q, Conceal %q", chunk, got, want)
		}
	})
}

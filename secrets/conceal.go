package secrets

import (
	"bytes"
	"io"
	"net/http"
	"sort"
)

// ConcealHeader replaces every real value in h's values by its
// placeholder: for the header of a response from a bound host before CMD
// reads it (a server may echo a request, or put a rewritten query string
// in a Location).
func (s *Set) ConcealHeader(h http.Header) {
	if s == nil || len(s.list) == 0 {
		return
	}
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = s.Conceal(v)
		}
		h[k] = vs
	}
}

// ConcealReader returns a reader of src's bytes with every real value
// replaced by its placeholder, as Conceal does, also where a value spans
// two reads. A placeholder is as long as its value, so the length of the
// stream (a Content-Length) does not change. Compressed or otherwise
// encoded bodies are passed as they are.
func (s *Set) ConcealReader(src io.Reader) io.Reader {
	if s == nil || len(s.list) == 0 {
		return src
	}
	c := &concealReader{src: src}
	for _, x := range s.list {
		c.pairs = append(c.pairs, [2][]byte{[]byte(x.value), []byte(x.placeholder)})
		c.longest = max(c.longest, len(x.value))
	}
	sort.SliceStable(c.pairs, func(i, j int) bool { return len(c.pairs[i][0]) > len(c.pairs[j][0]) })
	return c
}

// concealReader is ConcealReader's reader.
type concealReader struct {
	src     io.Reader
	pairs   [][2][]byte // value, placeholder; longest value first
	longest int
	in      []byte // read from src, not yet examined
	out     []byte // examined, ready for Read
	err     error  // src's error, once it returned one
	chunk   []byte
}

func (c *concealReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil && len(c.in) == 0 {
			return 0, c.err
		}
		if c.err == nil {
			if c.chunk == nil {
				c.chunk = make([]byte, 32<<10)
			}
			n, err := c.src.Read(c.chunk)
			c.in = append(c.in, c.chunk[:n]...)
			c.err = err
		}
		c.examine()
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// examine moves the bytes of in that no later byte can change into out,
// with the values among them replaced: all of them once src has ended,
// otherwise all but the last longest-1 (where a value may be starting).
func (c *concealReader) examine() {
	limit := len(c.in)
	if c.err == nil {
		limit -= c.longest - 1
	}
	i := 0
	for i < limit {
		j, k := c.earliest(c.in[i:])
		if j < 0 || i+j >= limit {
			break
		}
		c.out = append(c.out, c.in[i:i+j]...)
		c.out = append(c.out, c.pairs[k][1]...)
		i += j + len(c.pairs[k][0])
	}
	if i < limit {
		c.out = append(c.out, c.in[i:limit]...)
		i = limit
	}
	c.in = append(c.in[:0], c.in[i:]...)
}

// earliest finds the leftmost value in b (the longest one at that place),
// returning its offset and index, or -1.
func (c *concealReader) earliest(b []byte) (int, int) {
	at, which := -1, -1
	for k, pr := range c.pairs {
		if j := bytes.Index(b, pr[0]); j >= 0 && (at < 0 || j < at) {
			at, which = j, k
		}
	}
	return at, which
}

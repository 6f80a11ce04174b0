package secrets

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// part is one piece of a request that is searched for placeholders, and
// where it is (for the error).
type part struct {
	where string
	text  string
	fold  bool // compare without case (header names)
}

// parts lists every piece of r's head Apply searches: header names and
// values (and the decoded credentials of Basic ones), the Host, the URL's
// host, userinfo, path, query (raw and decoded) and opaque part, and the
// request URI as read by a server.
func parts(r *http.Request) []part {
	var ps []part
	addHeader := func(kind string, h http.Header) {
		for k, vs := range h {
			ps = append(ps, part{where: kind + " name", text: k, fold: true})
			for _, v := range vs {
				ps = append(ps, part{where: kind + " " + k, text: v})
				if dec, _, ok := basicCredentials(v); ok {
					ps = append(ps, part{where: kind + " " + k + " (Basic credentials)", text: dec})
				}
			}
		}
	}
	addHeader("header", r.Header)
	addHeader("trailer", r.Trailer)
	ps = append(ps, part{where: "Host", text: r.Host, fold: true})
	addDecoded := func(where, s string) {
		ps = append(ps, part{where: where, text: s})
		if d, err := url.QueryUnescape(s); err == nil && d != s {
			ps = append(ps, part{where: where + " (decoded)", text: d})
		}
	}
	addDecoded("request URI", r.RequestURI)
	if u := r.URL; u != nil {
		ps = append(ps, part{where: "URL host", text: u.Host, fold: true}, part{where: "URL path", text: u.Path},
			part{where: "URL path", text: u.RawPath}, part{where: "URL opaque part", text: u.Opaque})
		addDecoded("URL query", u.RawQuery)
		if u.User != nil {
			ps = append(ps, part{where: "URL userinfo", text: u.User.Username()})
			if p, ok := u.User.Password(); ok {
				ps = append(ps, part{where: "URL userinfo", text: p})
			}
		}
	}
	return ps
}

// basicCredentials decodes the credentials of a "Basic <base64>" header
// value (scheme in any case; padded or not), returning them and the value's
// text before the base64 (the scheme and its spaces). ok is false for any
// other value.
func basicCredentials(v string) (creds, head string, ok bool) {
	scheme, rest, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	b64 := strings.TrimLeft(rest, " ")
	head = v[:len(v)-len(b64)]
	b64 = strings.TrimRight(b64, " ")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if d, err := enc.DecodeString(b64); err == nil {
			return string(d), head, true
		}
	}
	return "", "", false
}

// Apply prepares a request to host and port (the target as the proxy
// decided it, not the request's Host) for sending: when every placeholder
// the request carries belongs to a secret bound to the target, each one is
// replaced by the real value in the header values (Basic credentials
// decoded and encoded again), the URL's userinfo and its query string.
// When any placeholder of a secret not bound to the target is found (see
// parts), r is left as it was and the error is a *NotBoundError (wrapping
// ErrNotBound) naming the secret and where its placeholder was; the
// placeholder itself is not in the error. The body, the trailers and the path are never rewritten;
// r.RequestURI is left as it is (a client request must have it empty).
func (s *Set) Apply(host string, port uint16, r *http.Request) error {
	if s == nil || len(s.list) == 0 || r == nil {
		return nil
	}
	bound := s.boundTo(host, port)
	for _, p := range parts(r) {
		if i := s.findUnbound(p, bound); i >= 0 {
			return &NotBoundError{Name: s.list[i].name, Where: p.where, Target: hostPortString(host, port), Bound: s.list[i].hostList()}
		}
	}
	s.substitute(r)
	return nil
}

// findUnbound returns the index of a secret that is not bound (per bound)
// and whose placeholder occurs in the part, or -1.
func (s *Set) findUnbound(p part, bound []bool) int {
	if p.text == "" {
		return -1
	}
	text := p.text
	if p.fold {
		text = strings.ToLower(text)
	}
	for i, x := range s.list {
		ph := x.placeholder
		if p.fold {
			ph = strings.ToLower(ph)
		}
		if !bound[i] && strings.Contains(text, ph) {
			return i
		}
	}
	return -1
}

// substitute replaces every placeholder in r's header values, userinfo
// and query by its real value. Apply has made sure they are all bound.
func (s *Set) substitute(r *http.Request) {
	for k, vs := range r.Header {
		for i, v := range vs {
			vs[i] = s.headerValue(v)
		}
		r.Header[k] = vs
	}
	u := r.URL
	if u == nil {
		return
	}
	if u.User != nil {
		name := s.toReal.Replace(u.User.Username())
		if p, ok := u.User.Password(); ok {
			u.User = url.UserPassword(name, s.toReal.Replace(p))
		} else {
			u.User = url.User(name)
		}
	}
	if s.find(u.RawQuery) >= 0 {
		u.RawQuery = s.toQuery.Replace(u.RawQuery)
	}
}

// headerValue is v with placeholders replaced, inside Basic credentials
// too.
func (s *Set) headerValue(v string) string {
	if creds, head, ok := basicCredentials(v); ok && s.find(creds) >= 0 {
		return head + base64.StdEncoding.EncodeToString([]byte(s.toReal.Replace(creds)))
	}
	if s.find(v) < 0 {
		return v
	}
	return s.toReal.Replace(v)
}

// hostList is the secret's host patterns for an error message.
func (x secret) hostList() string {
	names := make([]string, len(x.hosts))
	for i, e := range x.hosts {
		names[i] = e.String()
	}
	return strings.Join(names, ", ")
}

// hostPortString is host:port for messages, IPv6 in brackets.
func hostPortString(host string, port uint16) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d", host, port)
}

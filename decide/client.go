package decide

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds one question to a decider service when Client's
// timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxAnswer bounds the answer body read from a decider service.
const maxAnswer = 64 << 10

// Client is a Decider that asks a local service: it POSTs the Question as
// JSON to an http://loopback URL or over a unix socket and decodes the
// answer strictly (see DecodeAnswer and docs/decider.md).
type Client struct {
	url     string // the URL posted to
	hc      *http.Client
	timeout time.Duration
}

// ParseURL checks a --decider value: "http://127.0.0.1:PORT/PATH" (any
// loopback address or "localhost") or "unix:/absolute/path". It returns the
// URL to post to and, for unix, the socket path.
func ParseURL(s string) (postURL, socket string, err error) {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		if !strings.HasPrefix(rest, "/") {
			return "", "", fmt.Errorf("decider %q: a unix socket must be an absolute path, as in unix:/run/my-decider.sock", s)
		}
		return "http://decider/", rest, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("decider %q: %w", s, err)
	}
	if u.Scheme != "http" {
		return "", "", fmt.Errorf("decider %q: use http://127.0.0.1:PORT/PATH or unix:/path (scheme %q is not supported)", s, u.Scheme)
	}
	if u.User != nil {
		return "", "", fmt.Errorf("decider %q: credentials in the URL are not supported", s)
	}
	host := u.Hostname()
	if host != "localhost" {
		a, perr := netip.ParseAddr(host)
		if perr != nil || !a.IsLoopback() {
			return "", "", fmt.Errorf("decider %q: the host must be a loopback address (127.0.0.1, [::1] or localhost), because the question names the sandbox's destinations", s)
		}
	}
	if u.Port() == "" {
		return "", "", fmt.Errorf("decider %q: name the port, as in http://127.0.0.1:8700/decide", s)
	}
	return u.String(), "", nil
}

// NewClient returns a Client for a --decider value (see ParseURL). timeout
// bounds each question (0 means DefaultTimeout).
func NewClient(raw string, timeout time.Duration) (*Client, error) {
	postURL, socket, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if socket != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
	}
	hc := &http.Client{
		Transport: tr,
		// A redirect is an answer other than 200: never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{url: postURL, hc: hc, timeout: timeout}, nil
}

// wireQuestion is the JSON body posted to a decider service.
type wireQuestion struct {
	Run      string `json:"run"`
	Protocol string `json:"protocol"`
	Host     string `json:"host"`
	Port     uint16 `json:"port"`
	Method   string `json:"method,omitempty"`
	Path     string `json:"path,omitempty"`
}

// wireAnswer is the JSON body a decider service answers with.
type wireAnswer struct {
	Decision string `json:"decision"`
	Scope    string `json:"scope"`
}

// EncodeQuestion returns the JSON body posted for q.
func EncodeQuestion(q Question) []byte {
	b, _ := json.Marshal(wireQuestion(q))
	return b
}

// DecodeAnswer parses a decider's answer strictly: one JSON object whose
// keys are exactly "decision" ("allow" or "deny") and optionally "scope"
// ("once" or "run"; absent means "once"), both strings, each at most once.
// Any other key (keys are matched exactly, case included), a repeated key,
// another value or type, or data after the object is an error, and an error
// is a deny.
func DecodeAnswer(b []byte) (Answer, error) {
	w, err := decodeWire(b)
	if err != nil {
		return Answer{}, fmt.Errorf("malformed answer: %w", err)
	}
	switch w.Scope {
	case "", ScopeOnce, ScopeRun:
	default:
		return Answer{}, fmt.Errorf("malformed answer: scope %q is not \"once\" or \"run\"", w.Scope)
	}
	switch w.Decision {
	case "allow":
		if w.Scope == "" {
			w.Scope = ScopeOnce
		}
		return Answer{Allow: true, Scope: w.Scope}, nil
	case "deny":
		return Answer{Scope: w.Scope}, nil
	case "":
		return Answer{}, errors.New("malformed answer: no \"decision\"")
	}
	return Answer{}, fmt.Errorf("malformed answer: decision %q is not \"allow\" or \"deny\"", w.Decision)
}

// decodeWire reads the answer object token by token, so that a repeated
// key or a key in another case (which encoding/json would accept) is an
// error rather than a silent choice.
func decodeWire(b []byte) (wireAnswer, error) {
	var w wireAnswer
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return w, errors.New("want one JSON object, as in {\"decision\":\"allow\",\"scope\":\"run\"}")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return w, err
		}
		key, _ := tok.(string)
		var dst *string
		switch key {
		case "decision":
			dst = &w.Decision
		case "scope":
			dst = &w.Scope
		default:
			return w, fmt.Errorf("unknown field %q (only \"decision\" and \"scope\")", key)
		}
		if seen[key] {
			return w, fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		tok, err = dec.Token()
		if err != nil {
			return w, err
		}
		v, ok := tok.(string)
		if !ok {
			return w, fmt.Errorf("field %q must be a string", key)
		}
		*dst = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return w, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return w, errors.New("data after the JSON object")
	}
	return w, nil
}

// Decide posts q and decodes the answer, bounded by the client's timeout.
func (c *Client) Decide(ctx context.Context, q Question) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(EncodeQuestion(q)))
	if err != nil {
		return Answer{}, fmt.Errorf("decider request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Answer{}, fmt.Errorf("the decider did not answer within %v", c.timeout)
		}
		return Answer{}, fmt.Errorf("asking the decider: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return Answer{}, fmt.Errorf("reading the decider's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Answer{}, fmt.Errorf("the decider answered HTTP %d", resp.StatusCode)
	}
	if len(body) > maxAnswer {
		return Answer{}, errors.New("the decider's answer is too long")
	}
	return DecodeAnswer(body)
}

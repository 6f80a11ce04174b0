package proxy

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/egress"
)

// harnessLeak is what a failing decider's error says about the harness:
// nothing of it may reach the client.
const harnessLeak = "/run/harness-internal/decider.sock"

// TestDeciderFailureNotSentToClient: when the decider fails, the client
// gets a generic refusal (body and headers) for a plain request and a
// CONNECT, while the audit event keeps the decider's error.
func TestDeciderFailureNotSentToClient(t *testing.T) {
	dec := decide.Func(func(context.Context, decide.Question) (decide.Answer, error) {
		return decide.Answer{}, errors.New("asking the decider: dial unix " + harnessLeak + ": connect: no such file or directory")
	})
	e := newEnv(t, func(o *Options) { o.Gate.Ask = &egress.Asker{Decider: dec, Run: "t"} })
	for _, tt := range []struct {
		name, raw, host string
		port            uint16
	}{
		{"http", "GET http://failing.test/x HTTP/1.1\r\nHost: failing.test\r\n\r\n", "failing.test", 80},
		{"connect", "CONNECT failing2.test:443 HTTP/1.1\r\nHost: failing2.test:443\r\n\r\n", "failing2.test", 443},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, e.httpAddr)
			resp, body := roundTrip(t, c, bufio.NewReader(c), tt.raw)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403; body %q", resp.StatusCode, body)
			}
			if !strings.Contains(body, "refused: "+egress.DeciderFailedText) {
				t.Errorf("body %q does not say the decider failed", body)
			}
			sent := body
			for k, vs := range resp.Header {
				sent += "\n" + k + ": " + strings.Join(vs, ",")
			}
			if strings.Contains(sent, "harness-internal") || strings.Contains(sent, "no such file") {
				t.Errorf("the decider's error reached the client:\n%s", sent)
			}
			ev := e.log.wait(t, tt.host, tt.port)
			if ev.Reason != egress.ReasonDeciderFailed || !strings.Contains(ev.Text, harnessLeak) {
				t.Errorf("audit event %+v: want decider-failed with the decider's error", ev)
			}
		})
	}
}

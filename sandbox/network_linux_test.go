//go:build linux

package sandbox

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

func TestNetworkNone(t *testing.T) {
	addr := hostListener(t, "host-greeting")
	spec := helperSpec("net", addr)
	spec.Network = NetworkNone
	spec.Env = append(spec.Env, "HTTP_PROXY=http://proxy.example:3128", "no_proxy=x")
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	for _, want := range []string{
		"interfaces lo\n",
		"tcp " + addr + " ECONNREFUSED\n",          // the sandbox's loopback is its own
		"raw EPERM\n",                              // no CAP_NET_RAW
		"packet EAFNOSUPPORT\n",                    // not a family the seccomp filter lets CMD create
		"udp4 ENETUNREACH\n", "udp6 ENETUNREACH\n", // and no route but lo anyway
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, o.stdout)
		}
	}
	env := helperSpec("env", "HTTP_PROXY", "no_proxy")
	env.Network = NetworkNone
	env.Env = append(env.Env, "HTTP_PROXY=http://proxy.example:3128", "no_proxy=x")
	o = sandboxRun(t, env)
	if !strings.Contains(o.stdout, `HTTP_PROXY="" false`) || !strings.Contains(o.stdout, `no_proxy="" false`) {
		t.Errorf("inherited proxy variables not removed with NetworkNone:\n%s", o.stdout)
	}
}

func TestNetworkFull(t *testing.T) {
	addr := hostListener(t, "host-greeting")
	spec := helperSpec("net", addr)
	spec.Network = NetworkFull
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	if !strings.Contains(o.stdout, "tcp "+addr+" ok host-greeting\n") {
		t.Errorf("host listener not reachable with NetworkFull:\n%s", o.stdout)
	}
	if strings.Contains(o.stdout, "interfaces lo\n") {
		t.Errorf("NetworkFull should see the host's interfaces:\n%s", o.stdout)
	}
	env := helperSpec("env", "HTTP_PROXY")
	env.Network = NetworkFull
	env.Env = append(env.Env, "HTTP_PROXY=http://proxy.example:3128")
	o = sandboxRun(t, env)
	if !strings.Contains(o.stdout, `HTTP_PROXY="http://proxy.example:3128" true`) {
		t.Errorf("NetworkFull must keep the caller's environment:\n%s", o.stdout)
	}
}

func TestNetworkProxy(t *testing.T) {
	// An HTTP server and a line server on the host's loopback; only the
	// HTTP server is on the allow list.
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hsrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the host")
	})}
	go hsrv.Serve(hln)
	defer hsrv.Close()
	allowed := hln.Addr().String()
	socksTarget := hostListener(t, "socks-target-greeting")
	denied := hostListener(t, "must-not-be-reached")

	pol, err := policy.New(policy.Config{Allow: []string{allowed, socksTarget}})
	if err != nil {
		t.Fatal(err)
	}
	sum := audit.NewSummary()
	sh, sp, _ := net.SplitHostPort(socksTarget)
	spec := helperSpec("proxy", "http", allowed, "http", denied, "socks", sh, sp, "direct", allowed)
	spec.Gate = &egress.Gate{Policy: pol}
	spec.Audit = sum
	spec.Network = NetworkProxy
	spec.Env = append(spec.Env, "HTTPS_PROXY=http://corp.example:8080", "GIT_SSH_COMMAND=ssh -i key")
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 || o.res.ProxyErr != nil {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("http %s %q %q\n", allowed, "HTTP/1.1 200 OK", "hello from the host"),
		fmt.Sprintf("http %s \"HTTP/1.1 403 Forbidden\"", denied),
		fmt.Sprintf("socks %s ok socks-target-greeting\n", socksTarget),
		fmt.Sprintf("direct %s ECONNREFUSED\n", allowed), // no way around the proxy
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, o.stdout)
		}
	}
	if sum.Total() == 0 || len(sum.Refusals()) == 0 {
		t.Errorf("audit summary recorded no refusal: total %d, refusals %v", sum.Total(), sum.Refusals())
	}

	// The command's environment points at the proxies inside the sandbox.
	env := helperSpec("env", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "GIT_SSH_COMMAND")
	env.Gate, env.Network = spec.Gate, NetworkProxy
	env.Env = append(env.Env, "HTTPS_PROXY=http://corp.example:8080")
	o = sandboxRun(t, env)
	if o.err != nil {
		t.Fatal(o.err)
	}
	for _, re := range []string{
		`HTTP_PROXY="http://127\.0\.0\.1:\d+" true`,
		`HTTPS_PROXY="http://127\.0\.0\.1:\d+" true`,
		`ALL_PROXY="socks5h://127\.0\.0\.1:\d+" true`,
		`NO_PROXY="localhost,127\.0\.0\.1,::1" true`,
		`GIT_SSH_COMMAND=".*` + regexp.QuoteMeta(filepath.Base(testBinary())) + ` socks-connect 127\.0\.0\.1:\d+ %h %p'" true`,
	} {
		if !regexp.MustCompile(re).MatchString(o.stdout) {
			t.Errorf("environment lacks %s:\n%s", re, o.stdout)
		}
	}
}

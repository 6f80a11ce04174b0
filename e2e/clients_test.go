//go:build linux

package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRunRealClients runs ordinary tools in the sandbox with nothing but the
// environment sandgate gives them: curl over HTTP, HTTPS (CONNECT) and SOCKS5
// (from $ALL_PROXY), and OpenSSH through $GIT_SSH_COMMAND, whose ProxyCommand
// is sandgate itself speaking SOCKS5. curl told to bypass the proxy gets
// nowhere.
func TestRunRealClients(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	for _, tool := range []string{"curl", "ssh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-test-deps.sh installs it): %v", tool, err)
		}
	}
	script := `
curl -sS --max-time 5 http://remote4.test/ && echo CURL-HTTP-OK
curl -sS --max-time 5 --cacert "$1" https://remote6.test/ && echo CURL-HTTPS-OK
curl -sS --max-time 5 -x "$ALL_PROXY" http://remote.test/ && echo CURL-SOCKS-OK
curl -sS --max-time 5 --noproxy '*' http://` + remoteV4 + `/ || echo CURL-DIRECT-FAILED
eval "$GIT_SSH_COMMAND -F /dev/null -v -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -p 22 remote.test true"
echo SSH-DONE
`
	o := w.runSandgate(t, []string{"--allow", "remote.test", "--allow", "remote4.test", "--allow", "remote6.test"},
		"/bin/sh", "-c", script, "sh", w.caFile)
	for _, want := range []string{
		"sgtest-remote proto=http host=remote4.test local=" + remoteV4 + ":80", "CURL-HTTP-OK",
		"sgtest-remote proto=https host=remote6.test local=[" + remoteV6 + "]:443", "CURL-HTTPS-OK",
		"sgtest-remote proto=http host=remote.test", "CURL-SOCKS-OK",
		"CURL-DIRECT-FAILED", "SSH-DONE",
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	// ssh got as far as the remote's banner, through the proxy.
	if !strings.Contains(o.stderr, "remote software version sgtest-banner") {
		t.Errorf("ssh through $GIT_SSH_COMMAND did not reach the banner service; stderr:\n%s", o.stderr)
	}
}

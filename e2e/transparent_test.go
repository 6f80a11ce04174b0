//go:build linux

package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// transparentScript runs, in the sandbox, clients that know nothing of the
// proxy (every proxy variable removed): each prints its marker when it got
// what it should. $1 is the test CA.
const transparentScript = `
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy NO_PROXY no_proxy GIT_SSH_COMMAND
curl -sS --max-time 5 --noproxy '*' http://remote4.test/ && echo T-CURL-DNS-OK
curl -sS --max-time 5 --noproxy '*' --cacert "$1" https://remote6.test/ && echo T-CURL-TLS6-OK
curl -sS --max-time 5 --noproxy '*' http://` + hostsOnlyName + `/ && echo T-CURL-HOSTS-OK
node -e 'fetch("http://remote.test/").then(r => r.text()).then(t => { console.log(t.trim()); console.log("T-NODE-OK") }, e => { console.log("T-NODE-FAILED", String(e.cause || e)); process.exit(1) })'
echo hello | nc -w 3 remote.test 22 | head -1 | grep -q '^SSH-2.0-sgtest-banner' && echo T-NC-OK
ssh -F /dev/null -v -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -p 22 remote.test true 2>&1 | grep -q 'remote software version sgtest-banner' && echo T-SSH-OK
getent hosts transparent-denied.test || echo T-DENIED-NXDOMAIN
curl -sS --max-time 5 --noproxy '*' http://` + evilV4 + `/ || echo T-LITERAL-REFUSED
echo x 2>/dev/null >/dev/udp/` + remoteV4 + `/9 || echo T-UDP-REFUSED
echo x 2>/dev/null >/dev/udp/` + remoteV4 + `/443 || echo T-QUIC-REFUSED
for i in $(seq 1 40); do curl -s --max-time 10 --noproxy '*' -o /dev/null -w '%{http_code}\n' http://remote4.test/ & done > codes.txt
wait
[ "$(grep -c '^200$' codes.txt)" = 40 ] && echo T-CONCURRENT-OK
nc -w 2 hostlan.test "$2" </dev/null | grep -q HOST-SERVICE || echo T-HOSTLAN-REFUSED
nc -w 2 ` + hostV4 + ` "$2" </dev/null | grep -q HOST-SERVICE || echo T-HOSTLAN-LITERAL-REFUSED
echo x 2>/dev/null >>/etc/hosts || echo T-HOSTS-RO
echo x 2>/dev/null >>/etc/resolv.conf || echo T-RESOLV-RO
grep -q '^nameserver 127.0.0.1$' /etc/resolv.conf && echo T-RESOLV-STUB
seq 1 300 | sed 's/.*/flood-&.flood.test/' | xargs getent ahostsv4 | awk '$2 == "STREAM" {print $1}' | sort -u | wc -l | sed 's/^/T-FLOOD-ADDRS /'
`

// TestRunTransparent runs clients that ignore the proxy variables under the
// transparent path, sandgate's default (netns backend, as root and as an
// ordinary user): curl
// by a name only DNS knows, over IPv6 TLS, and by a name only the hosts file
// knows; Node's fetch; nc and plain ssh to :22; 40 connections at once; 300
// distinct names at once, each with its own address. A denied name gets
// NXDOMAIN without the remote resolver ever seeing it; a denied IP literal,
// UDP and QUIC are refused, and all three are in the audit file and the
// exit summary; the host's own LAN service stays out of reach, by name
// (the address class) and as a literal.
func TestRunTransparent(t *testing.T) {
	w := requireSandgate(t)
	t.Parallel()
	for _, tool := range []string{"curl", "ssh", "nc", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-test-deps.sh installs it): %v", tool, err)
		}
	}
	for _, who := range []string{"root", "user"} {
		t.Run(who, func(t *testing.T) {
			var u *testUser
			if who == "user" {
				u = createUser(t)
			}
			_, lanPort, _ := net.SplitHostPort(w.hostLAN4)
			dir := t.TempDir()
			if u != nil {
				chownForUser(t, dir, u)
			}
			auditFile := filepath.Join(dir, "audit.jsonl")
			flags := []string{"--backend", "netns", "--audit", auditFile,
				"--allow", "remote.test", "--allow", "remote4.test:80", "--allow", "remote6.test:443",
				"--allow", hostsOnlyName + ":80", "--allow", "**.flood.test", "--allow", "hostlan.test"}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			c := w.hostCmd(ctx, u, newHome(t, u), sandgateArgv(flags, "/bin/bash", "-c", transparentScript, "sh", w.caFile, lanPort)...)
			c.Dir = dir
			// sandgate's own files for the run (the hosts and resolv.conf
			// views) go to TMPDIR and are gone when it has ended.
			tmp := filepath.Join(dir, "tmp")
			if err := os.Mkdir(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
			if u != nil {
				chownForUser(t, tmp, u)
			}
			c.Env = append(c.Env, "TMPDIR="+tmp)
			o := finish(t, c)
			if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
				t.Errorf("sandgate left %v in its TMPDIR (%v)", left, err)
			}
			for _, want := range []string{
				"T-CURL-DNS-OK", "local=" + remoteV4 + ":80",
				"T-CURL-TLS6-OK", "proto=https host=remote6.test local=[" + remoteV6 + "]:443",
				"T-CURL-HOSTS-OK", "host=" + hostsOnlyName,
				"T-NODE-OK", "T-NC-OK", "T-SSH-OK",
				"T-DENIED-NXDOMAIN", "T-LITERAL-REFUSED", "T-UDP-REFUSED", "T-QUIC-REFUSED",
				"T-CONCURRENT-OK", "T-FLOOD-ADDRS 300", "T-HOSTS-RO", "T-RESOLV-RO", "T-RESOLV-STUB",
				"T-HOSTLAN-REFUSED", "T-HOSTLAN-LITERAL-REFUSED",
			} {
				if !strings.Contains(o.stdout, want) {
					t.Errorf("stdout lacks %q", want)
				}
			}
			if o.code != 0 {
				t.Errorf("exit %d, want 0", o.code)
			}
			if w.dns.asked("transparent-denied.test") {
				t.Error("the remote resolver was asked about a denied name")
			}
			for _, q := range w.dns.log() {
				if strings.HasSuffix(q, ".flood.test") {
					t.Errorf("the remote resolver was asked about %s, a name nothing connected to", q)
					break
				}
			}
			evs := readAudit(t, auditFile)
			findAudit(t, evs, "transparent-denied.test", 0, "deny", "not-allowed")
			findAudit(t, evs, evilV4, 80, "deny", "not-allowed")
			findAudit(t, evs, "udp", 0, "deny", "udp-refused")
			findAudit(t, evs, "remote4.test", 80, "allow", "allowed")
			findAudit(t, evs, hostsOnlyName, 80, "allow", "allowed")
			lan, _ := strconv.Atoi(lanPort)
			findAudit(t, evs, "hostlan.test", uint16(lan), "deny", "address-class:")
			findAudit(t, evs, hostV4, uint16(lan), "deny", "not-allowed")
			for _, want := range []string{"transparent-denied.test (not on the allow list)", evilV4 + ":80 (IP literal not on the allow list)", "udp (UDP other than DNS"} {
				if !strings.Contains(o.stderr, want) {
					t.Errorf("the exit summary lacks %q; stderr:\n%s", want, o.stderr)
				}
			}
			if t.Failed() {
				t.Logf("audit: %+v", evs)
			}
		})
	}
}

package doctor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure a doctor run.
type Options struct {
	Self string   // the sandgate binary to run the proof with (os.Executable)
	Args []string // extra `sandgate run` flags (tests: --backend); none for the default run
}

// Run gathers the host facts and, where the platform has a run, the proof,
// and returns the report.
func Run(ctx context.Context, o Options) Report {
	r := Report{OS: runtime.GOOS}
	r.Checks = append(r.Checks, hostChecks()...)
	r.Checks = append(r.Checks, prove(ctx, o)...)
	return r
}

// targets are the doctor's listeners outside the sandbox: an HTTP target
// on loopback (allowed, reached through the proxy), a TCP and a UDP socket
// on a non-loopback address of this host when it has one (reached
// directly, which must fail).
type targets struct {
	token    string
	http     *http.Server
	httpAddr string
	direct   net.Listener
	udp      net.PacketConn
	udpHits  atomic.Int64
}

func openTargets() (*targets, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	t := &targets{token: "sandgate-doctor-" + hex.EncodeToString(b[:])}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	t.httpAddr = ln.Addr().String()
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, t.token) })
	t.http = &http.Server{Handler: answer, ReadHeaderTimeout: 5 * time.Second}
	go t.http.Serve(ln)
	host := directHost()
	if t.direct, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
		t.close()
		return nil, fmt.Errorf("listen on %s: %w", host, err)
	}
	go (&http.Server{Handler: answer, ReadHeaderTimeout: 5 * time.Second}).Serve(t.direct)
	if t.udp, err = net.ListenPacket("udp", net.JoinHostPort(host, "0")); err != nil {
		t.close()
		return nil, fmt.Errorf("listen on %s (udp): %w", host, err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := t.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			if bytes.Contains(buf[:n], []byte(t.token)) {
				t.udpHits.Add(1)
			}
		}
	}()
	return t, nil
}

func (t *targets) close() {
	if t.http != nil {
		t.http.Close()
	}
	if t.direct != nil {
		t.direct.Close()
	}
	if t.udp != nil {
		t.udp.Close()
	}
}

// directHost is a non-loopback address of this host, so that "direct"
// means the host's own network and not the sandbox's loopback; loopback
// when the host has no other address.
func directHost() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// prove runs one sandbox the way a default run would and checks, from
// inside and from the host, that enforcement holds.
func prove(ctx context.Context, o Options) []Check {
	fail := func(detail, fix string) []Check {
		return []Check{{Name: "sandbox proof", Required: true, Detail: detail, Fix: fix}}
	}
	if o.Self == "" {
		return fail("no sandgate binary to run the proof with", "run the doctor from the sandgate binary")
	}
	dir, err := proofDir()
	if err != nil {
		return fail(err.Error(), "make /var/tmp or $TMPDIR writable")
	}
	defer os.RemoveAll(dir)
	ws := filepath.Join(dir, "workspace")
	outside := outsidePath(dir)
	hook := hookPath(ws)
	if err := makeProofDirs(ws, outside); err != nil {
		return fail(err.Error(), "")
	}
	t, err := openTargets()
	if err != nil {
		return fail(err.Error(), "")
	}
	defer t.close()
	pa := ProbeArgs{DirectTCP: t.direct.Addr().String(), DirectUDP: t.udp.LocalAddr().String(),
		Proxied: t.httpAddr, Token: t.token, Outside: outside, Hook: hook}
	argJSON, _ := json.Marshal(pa)
	auditPath := filepath.Join(dir, "audit.jsonl")
	args := append([]string{"run", "--allow", t.httpAddr, "--audit", auditPath, "--workspace", ws}, o.Args...)
	args = append(args, "--", o.Self, ProbeRole, string(argJSON))
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Self, args...)
	cmd.Dir = ws
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res ProbeResult
	if jerr := json.Unmarshal(bytes.TrimSpace(lastLine(stdout.Bytes())), &res); runErr != nil || jerr != nil {
		return fail(fmt.Sprintf("a default `sandgate run` did not complete: %s", runFailure(runErr, jerr, stderr.String())),
			"read the message above; `sandgate run -- true` shows the same error and its fix")
	}
	time.Sleep(100 * time.Millisecond) // let a datagram that got out arrive
	return judge(res, t.udpHits.Load(), proofPaths{outside, hook, auditPath}, t.httpAddr)
}

// makeProofDirs makes the workspace, with a minimal git repository in it
// (HEAD, objects, refs, hooks: what git and the view recognise), and the
// directory next to it.
func makeProofDirs(ws, outside string) error {
	git := filepath.Join(ws, ".git")
	for _, d := range []string{filepath.Dir(outside), filepath.Join(git, "objects"), filepath.Join(git, "refs", "heads"), filepath.Join(git, "hooks")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(git, "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
}

// proofPaths are the host files the proof checks afterwards.
type proofPaths struct{ outside, hook, audit string }

func proofDir() (string, error) {
	// In the caller's home when it can: the run's view shows it
	// (copy-on-write), where a private /tmp would hide the directory and a
	// refused write there would prove nothing.
	var bases []string
	if d, err := os.UserCacheDir(); err == nil {
		if os.MkdirAll(d, 0o700) == nil {
			bases = append(bases, d)
		}
	}
	for _, base := range append(bases, "/var/tmp", os.TempDir()) {
		if d, err := os.MkdirTemp(base, "sandgate-doctor-"); err == nil {
			return d, os.Chmod(d, 0o755)
		}
	}
	return "", errors.New("cannot make a directory for the proof in /var/tmp or " + os.TempDir())
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func runFailure(runErr, jerr error, stderr string) string {
	msg := strings.TrimSpace(stderr)
	if msg == "" && runErr != nil {
		msg = runErr.Error()
	}
	if msg == "" && jerr != nil {
		msg = "the probe's report is unreadable: " + jerr.Error()
	}
	var ee *exec.ExitError
	if errors.As(runErr, &ee) {
		msg = "exit status " + strconv.Itoa(ee.ExitCode()) + ": " + msg
	}
	return msg
}

// judge turns the probe's findings and the host's observations into checks.
func judge(res ProbeResult, udpHits int64, p proofPaths, target string) []Check {
	var out []Check
	add := func(name string, ok bool, okText, badText, fix string) {
		c := Check{Name: name, OK: ok, Required: true, Detail: okText}
		if !ok {
			c.Detail, c.Fix = badText, fix
		}
		out = append(out, c)
	}
	bug := "this is a sandgate bug or an unsupported kernel: please report it with `sandgate doctor --json`"
	add("direct TCP refused", res.DirectTCP == "", "a direct TCP connection from inside got nothing from the host", res.DirectTCP, bug)
	add("direct UDP refused", udpHits == 0, "no direct UDP datagram from inside arrived ("+res.DirectUDP+" inside)",
		fmt.Sprintf("%d direct UDP datagrams from inside arrived", udpHits), bug)
	add("proxied request works", res.Proxied == "", "a request to the allowed target "+target+" went through the proxy", res.Proxied,
		"check that nothing on this host intercepts loopback traffic; run `sandgate run --allow "+target+" -- …` to see the refusal")
	audited := auditHas(p.audit, target)
	add("proxied request audited", audited, "the audit file records it", "the audit file "+p.audit+" has no allow event for "+target, bug)
	_, statErr := os.Stat(p.outside)
	inside := "it failed inside (" + res.Errno + ")"
	if res.Outside != "" {
		inside = "it went to the run's copy-on-write layer"
	}
	add("write outside workspace held", errors.Is(statErr, os.ErrNotExist), "a file written outside the workspace never reached the host: "+inside,
		"a file written from inside outside the workspace appeared on the host: "+p.outside, bug)
	_, statErr = os.Stat(p.hook)
	add("git hook write refused", res.Hook == "" && errors.Is(statErr, os.ErrNotExist),
		"creating .git/hooks/pre-commit in the workspace failed inside ("+res.HookErrno+")",
		"a git hook in the workspace could be created from inside", bug)
	return out
}

func auditHas(path, target string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	host, portText, _ := net.SplitHostPort(target)
	port, _ := strconv.Atoi(portText)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			Host     string `json:"host"`
			Port     int    `json:"port"`
			Decision string `json:"decision"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Host == host && ev.Port == port && ev.Decision == "allow" {
			return true
		}
	}
	return false
}

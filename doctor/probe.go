package doctor

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ProbeRole is the argv[1] under which the sandgate binary runs the probe
// inside the doctor's sandbox.
const ProbeRole = "__doctor-probe"

// ProbeArgs are what the doctor asks the probe to try.
type ProbeArgs struct {
	DirectTCP string `json:"direct_tcp"` // host:port of a listener outside the sandbox, reached directly
	DirectUDP string `json:"direct_udp"` // host:port of a UDP socket outside the sandbox
	Proxied   string `json:"proxied"`    // host:port of the allowed target, reached through $HTTP_PROXY
	Token     string `json:"token"`      // what the targets answer / expect
	Outside   string `json:"outside"`    // a file path outside the workspace to try to create
	Hook      string `json:"hook"`       // a git hook path inside the workspace, never writable
}

// ProbeResult is what the probe found inside, one field per attempt; an
// empty string means the attempt was refused as it must be (or, for
// Proxied, that it worked).
type ProbeResult struct {
	DirectTCP string `json:"direct_tcp"` // "" when no byte of the target's answer arrived
	DirectUDP string `json:"direct_udp"` // the send error, or "sent" (the doctor checks arrival)
	Proxied   string `json:"proxied"`    // "" when the proxied request got the token
	Outside   string `json:"outside"`    // "" when the write failed
	Errno     string `json:"outside_errno,omitempty"`
	Hook      string `json:"hook"` // "" when the write failed
	HookErrno string `json:"hook_errno,omitempty"`
}

// ProbeMain runs the probe when args[1] is ProbeRole (args[2] is the JSON
// ProbeArgs) and returns its exit status; ok is false otherwise.
func ProbeMain(args []string) (code int, ok bool) {
	if len(args) < 3 || args[1] != ProbeRole {
		return 0, false
	}
	var a ProbeArgs
	if err := json.Unmarshal([]byte(args[2]), &a); err != nil {
		fmt.Fprintf(os.Stderr, "doctor probe: bad arguments: %v\n", err)
		return 2, true
	}
	res := runProbe(a, os.Getenv)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1, true
	}
	return 0, true
}

func runProbe(a ProbeArgs, getenv func(string) string) ProbeResult {
	var r ProbeResult
	r.DirectTCP = directTCP(a.DirectTCP, a.Token)
	r.DirectUDP = directUDP(a.DirectUDP, a.Token)
	r.Proxied = proxied(getenv, a.Proxied, a.Token)
	r.Outside, r.Errno = tryWrite(a.Outside, a.Token)
	r.Hook, r.HookErrno = tryWrite(a.Hook, a.Token)
	return r
}

// tryWrite creates path; done is non-empty when that worked, errno names
// the error when it did not.
func tryWrite(path, content string) (done, errno string) {
	err := os.WriteFile(path, []byte(content), 0o700)
	if err == nil {
		return "created " + path, ""
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return "", pe.Err.Error()
	}
	return "", err.Error()
}

// directTCP connects without any proxy and reports whether the target's
// answer (the token) came back. A connection that the sandbox accepts and
// then refuses (the transparent path) is a pass: no byte of the target.
func directTCP(addr, token string) string {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	b, _ := io.ReadAll(io.LimitReader(c, 64<<10))
	if strings.Contains(string(b), token) {
		return "reached " + addr + " directly"
	}
	return ""
}

func directUDP(addr, token string) string {
	c, err := net.DialTimeout("udp", addr, 3*time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		if _, err := c.Write([]byte(token)); err != nil {
			return err.Error()
		}
	}
	return "sent"
}

// proxied sends one plain-HTTP request to target through the proxy named by
// HTTP_PROXY (credentials included, as the identity backend sets them).
// It speaks HTTP by hand because Go's own proxy selection never proxies
// loopback targets.
func proxied(getenv func(string) string, target, token string) string {
	raw := getenv("HTTP_PROXY")
	if raw == "" {
		raw = getenv("http_proxy")
	}
	if raw == "" {
		return "HTTP_PROXY is not set inside the sandbox"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("HTTP_PROXY %q is not a URL", raw)
	}
	c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		return "dial the proxy: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	auth := ""
	if u.User != nil {
		pw, _ := u.User.Password()
		auth = "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)) + "\r\n"
	}
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", target, target, auth)
	br := bufio.NewReader(c)
	b, _ := io.ReadAll(io.LimitReader(br, 64<<10))
	if strings.Contains(string(b), token) {
		return ""
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return fmt.Sprintf("the proxied request to %s did not get the target's answer (got %q)", target, strings.TrimSpace(first))
}

// outsidePath is where the probe tries to write: next to the workspace,
// in the doctor's own directory.
func outsidePath(dir string) string { return filepath.Join(dir, "outside", "written-from-inside") }

// hookPath is a git hook in the proof's workspace, which must not be
// writable even though the workspace is.
func hookPath(ws string) string { return filepath.Join(ws, ".git", "hooks", "pre-commit") }

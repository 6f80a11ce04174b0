//go:build linux

package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// srt (the sandbox runtime from npm) as a peer of `bench inspect`: its
// proxy-only mode (`dist/proxy-main.js`, the `srt-proxy` entry) serves its
// HTTP proxy with TLS termination (the tlsTerminate code path) when given
// a CA, and decides every request through an external decider on an
// inherited socket. The bench is that decider: it allows 127.0.0.1 and
// every request. The upstream's CA reaches Node through
// NODE_EXTRA_CA_CERTS (proxy-only mode has no flag for it).

// srtProxy is a running srt-proxy.
type srtProxy struct {
	proc
	addr    string
	ca      *x509.CertPool
	version string
	decider net.Conn
	life    *os.File // the lifeline's write end: closing it stops the proxy
}

// startSrt runs node on pkg's dist/proxy-main.js.
func startSrt(node, pkg, dir, caFile string) (*srtProxy, error) {
	nodePath, err := exec.LookPath(node)
	if err != nil {
		return nil, fmt.Errorf("%s not found: %w", node, err)
	}
	entry := filepath.Join(pkg, "dist", "proxy-main.js")
	if _, err := os.Stat(entry); err != nil {
		return nil, fmt.Errorf("srt's proxy entry: %w (install it with scripts/install-bench-deps.sh)", err)
	}
	version := "srt-proxy, unknown version"
	if out, err := exec.Command(nodePath, entry, "--version").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	caPEM, caPool, err := makeRSACA()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("decider socket pair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "decider"), os.NewFile(uintptr(fds[1]), "decider-srt")
	defer theirs.Close()
	decider, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, err
	}
	caR, caW, err := os.Pipe()
	if err != nil {
		decider.Close()
		return nil, err
	}
	defer caR.Close()
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		decider.Close()
		caW.Close()
		return nil, err
	}
	defer lifeR.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(nodePath, entry, "--listen", addr, "--decider-fd", "3", "--ca-fd", "4", "--lifeline-fd", "5")
	cmd.ExtraFiles = []*os.File{theirs, caR, lifeR}
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+caFile)
	sp := &srtProxy{proc: proc{cmd: cmd, stderr: &limitedBuf{}}, addr: addr, ca: caPool, version: version, decider: decider, life: lifeW}
	cmd.Stdout, cmd.Stderr = sp.stderr, sp.stderr
	if err := sp.start(); err != nil {
		decider.Close()
		caW.Close()
		lifeW.Close()
		return nil, fmt.Errorf("starting %s %s: %w", nodePath, entry, err)
	}
	_, werr := caW.Write(caPEM)
	caW.Close()
	go serveSrtDecider(decider, []string{"127.0.0.1"})
	if werr != nil {
		sp.stop()
		return nil, fmt.Errorf("handing srt its CA: %w", werr)
	}
	if err := waitListening(addr, 20*time.Second, sp.gone); err != nil {
		sp.stop()
		return nil, fmt.Errorf("srt-proxy: %w (output: %s)", err, strings.TrimSpace(sp.stderr.String()))
	}
	return sp, nil
}

func (s *srtProxy) stop() {
	if s == nil {
		return
	}
	s.life.Close()
	s.decider.Close()
	s.proc.stop()
}

// waitListening polls addr until it accepts, gone says the process ended,
// or d passes.
func waitListening(addr string, d time.Duration, gone func() bool) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if gone() {
			return errors.New("exited before listening")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s within %s", addr, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// makeRSACA makes the CA srt terminates with (RSA 2048: srt mints RSA
// leaves with node-forge) as one PEM of key and certificate.
func makeRSACA() ([]byte, *x509.CertPool, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("srt CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "bench srt CA"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("srt CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return out, pool, nil
}

// deciderMsg is the part of srt's decider messages the bench reads.
type deciderMsg struct {
	T     string `json:"t"`
	ID    int64  `json:"id"`
	Proto int    `json:"proto"`
}

// maxDeciderFrame is the largest frame the bench's decider reads (srt's
// own limit for the frames it sends).
const maxDeciderFrame = 1 << 20

// readDeciderFrame reads one frame: a 4-byte big-endian length and that
// many bytes of JSON.
func readDeciderFrame(r io.Reader) (deciderMsg, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return deciderMsg{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxDeciderFrame {
		return deciderMsg{}, fmt.Errorf("decider frame of %d bytes (want 1 to %d)", n, maxDeciderFrame)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return deciderMsg{}, fmt.Errorf("decider frame: %w", err)
	}
	var m deciderMsg
	if err := json.Unmarshal(buf, &m); err != nil {
		return deciderMsg{}, fmt.Errorf("decider frame: %w", err)
	}
	return m, nil
}

// writeDeciderFrame writes v as one frame.
func writeDeciderFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	_, err = w.Write(append(frame, body...))
	return err
}

// serveSrtDecider answers the hello with allowed and allows every request,
// until the link closes.
func serveSrtDecider(c net.Conn, allowed []string) {
	defer c.Close()
	for {
		m, err := readDeciderFrame(c)
		if err != nil {
			return
		}
		var reply any
		switch m.T {
		case "hello":
			reply = map[string]any{"t": "hello", "proto": 1, "allowedDomains": allowed, "deniedDomains": []string{}}
		case "req":
			reply = map[string]any{"t": "verdict", "id": m.ID, "action": "allow"}
		default:
			continue
		}
		if writeDeciderFrame(c, reply) != nil {
			return
		}
	}
}

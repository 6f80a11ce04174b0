package inspect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CAValidity is how long a run's CA (and every leaf it signs) is valid.
const CAValidity = 14 * 24 * time.Hour

// Authority is a per-run certificate authority held only in memory. It
// signs one leaf certificate per intercepted host, on demand, and keeps it
// for the rest of the run, with the TLS configuration clients' sessions
// resume under; it also keeps the run's upstream TLS sessions (per trust
// pool and port). Safe for concurrent use.
type Authority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte

	mu     sync.Mutex
	leaves map[string]*leafEntry

	// sessions are the TLS sessions of upstream connections, one cache per
	// trust pool (a session verified against one pool is never resumed
	// under another), so that a new upstream connection resumes instead
	// of verifying the chain and the server's signature again.
	sessMu   sync.Mutex
	sessions map[*x509.CertPool]tls.ClientSessionCache
}

// leafEntry is one host's leaf; done is closed once cert or err is set, so
// concurrent first requests for a host make the certificate once. conf is
// the client-facing TLS configuration with that leaf, shared by every
// connection to the host so that the session tickets it issues resume on
// the client's next connection.
type leafEntry struct {
	done chan struct{}
	cert *tls.Certificate
	conf *tls.Config
	err  error
}

// upstreamSessionCacheSize bounds the upstream sessions kept per pool,
// and maxSessionPools the pools an Authority keeps sessions for.
const (
	upstreamSessionCacheSize = 512
	maxSessionPools          = 16
)

// NewAuthority makes a fresh CA: an ECDSA P-256 key and a self-signed
// certificate named "sandgate run CA <random>", CA:true with path length 0,
// valid from an hour ago for CAValidity.
func NewAuthority() (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("inspect: making the run CA key: %w", err)
	}
	var tag [8]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return nil, fmt.Errorf("inspect: making the run CA name: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "sandgate run CA " + hex.EncodeToString(tag[:]), Organization: []string{"sandgate"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("inspect: signing the run CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("inspect: reading back the run CA: %w", err)
	}
	return &Authority{
		cert:     cert,
		key:      key,
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		leaves:   make(map[string]*leafEntry),
		sessions: make(map[*x509.CertPool]tls.ClientSessionCache),
	}, nil
}

// CertPEM returns the CA certificate (never its key) in PEM form, for
// clients to trust.
func (a *Authority) CertPEM() []byte { return append([]byte(nil), a.certPEM...) }

// Certificate returns the parsed CA certificate.
func (a *Authority) Certificate() *x509.Certificate { return a.cert }

// Leaf returns the certificate for host (a DNS name, or an IP literal for
// which the certificate carries an IP SAN), making it on first use. The
// host is compared without case and without a trailing dot.
func (a *Authority) Leaf(host string) (*tls.Certificate, error) {
	e, err := a.entry(host)
	if err != nil {
		return nil, err
	}
	return e.cert, nil
}

// serverConfig returns the shared client-facing TLS configuration for
// host: its leaf, ALPN h2 and http/1.1, TLS 1.2 or newer.
func (a *Authority) serverConfig(host string) (*tls.Config, error) {
	e, err := a.entry(host)
	if err != nil {
		return nil, err
	}
	return e.conf, nil
}

// entry returns host's leaf entry, making the leaf on first use.
func (a *Authority) entry(host string) (*leafEntry, error) {
	host = normalHost(host)
	if host == "" {
		return nil, fmt.Errorf("inspect: no host to make a certificate for")
	}
	a.mu.Lock()
	e, ok := a.leaves[host]
	if !ok {
		e = &leafEntry{done: make(chan struct{})}
		a.leaves[host] = e
	}
	a.mu.Unlock()
	if ok {
		<-e.done
		return e, e.err
	}
	e.cert, e.err = a.makeLeaf(host)
	if e.err == nil {
		e.conf = &tls.Config{
			Certificates: []tls.Certificate{*e.cert},
			NextProtos:   []string{"h2", "http/1.1"},
			MinVersion:   tls.VersionTLS12,
		}
	}
	close(e.done)
	if e.err != nil {
		// Do not keep a failure: the next request tries again.
		a.mu.Lock()
		delete(a.leaves, host)
		a.mu.Unlock()
	}
	return e, e.err
}

// upstreamSessions returns the session cache for upstream connections
// verified against roots (nil: the system pool) to port. Go keys sessions
// by server name; the port is added to the key, so that another service
// on the same name is not offered this one's session.
func (a *Authority) upstreamSessions(roots *x509.CertPool, port uint16) tls.ClientSessionCache {
	a.sessMu.Lock()
	c, ok := a.sessions[roots]
	if !ok && len(a.sessions) < maxSessionPools {
		c = tls.NewLRUClientSessionCache(upstreamSessionCacheSize)
		a.sessions[roots] = c
	}
	a.sessMu.Unlock()
	if c == nil {
		return nil // a caller making a new pool per connection: no resumption rather than unbounded caches
	}
	return portSessions{c: c, suffix: ":" + strconv.Itoa(int(port))}
}

// portSessions is a session cache whose keys carry the port.
type portSessions struct {
	c      tls.ClientSessionCache
	suffix string
}

func (p portSessions) Get(key string) (*tls.ClientSessionState, bool) { return p.c.Get(key + p.suffix) }

func (p portSessions) Put(key string, cs *tls.ClientSessionState) { p.c.Put(key+p.suffix, cs) }

// makeLeaf signs a new leaf certificate for host.
func (a *Authority) makeLeaf(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("inspect: making the key for %s: %w", host, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    a.cert.NotBefore,
		NotAfter:     a.cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("inspect: signing the certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("inspect: reading back the certificate for %s: %w", host, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, a.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("inspect: making a serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// normalHost lower-cases host, drops one trailing dot and IPv6 brackets.
func normalHost(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().String()
	}
	return host
}

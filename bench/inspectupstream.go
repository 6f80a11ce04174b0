//go:build linux

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// tlsUpstream is the "real" HTTPS server of `bench inspect`: HTTP/1.1 and
// h2 on 127.0.0.1 with a certificate from a CA of its own (the stand-in
// for the public trust, which every proxy under test must verify).
//
//	GET /bulk?n=BYTES  BYTES of body with a Content-Length
//	GET /small         1 KiB of body
type tlsUpstream struct {
	ln     net.Listener
	srv    *http.Server
	caPEM  []byte
	pool   *x509.CertPool
	served chan error
}

// smallBody is the size of the new-connection exchange's response.
const smallBody = 1024

// startTLSUpstream makes the CA and the server's certificate (an IP SAN
// for 127.0.0.1, ECDSA P-256) and serves on a new loopback port.
func startTLSUpstream() (*tlsUpstream, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("upstream CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench public CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("upstream CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("upstream CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("upstream key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{netip.MustParseAddr("127.0.0.1").AsSlice()},
		NotBefore:   now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("upstream certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &tlsUpstream{
		ln:     ln,
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pool:   x509.NewCertPool(),
		served: make(chan error, 1),
	}
	u.pool.AddCert(caCert)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	u.srv = &http.Server{
		Handler:   http.HandlerFunc(serveUpstream),
		Protocols: &protos,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}},
			NextProtos:   []string{"h2", "http/1.1"},
		},
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { u.served <- u.srv.ServeTLS(ln, "", "") }()
	return u, nil
}

func (u *tlsUpstream) addr() string { return u.ln.Addr().String() }

func (u *tlsUpstream) close() { u.srv.Close() }

// bulkChunk is what /bulk writes, again and again.
var bulkChunk = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>9) // not all zeros, not compressible to nothing
	}
	return b
}()

// serveUpstream answers /bulk and /small.
func serveUpstream(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/small":
		w.Header().Set("Content-Length", strconv.Itoa(smallBody))
		w.Write(bulkChunk[:smallBody])
	case "/bulk":
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		for n > 0 {
			k := min(n, int64(len(bulkChunk)))
			if _, err := w.Write(bulkChunk[:k]); err != nil {
				return
			}
			n -= k
		}
	default:
		http.NotFound(w, r)
	}
}

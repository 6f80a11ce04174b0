//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// The checks of an inspected host's protocols: HTTP/2, a gRPC-shaped
// exchange and a WebSocket upgrade, each through $HTTPS_PROXY and trusting
// the system's roots only (in a sandbox: the view's bundle with the run's
// CA).

// h2Client is an HTTP client through the environment's proxy that offers
// h2 and http/1.1 and trusts the system roots.
func h2Client() *http.Client {
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{NextProtos: []string{"h2", "http/1.1"}}}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// checkH2 GETs URL offering h2; the detail names the protocol the answer
// came in and the body. Anything but 200 fails.
func checkH2(args []string) (string, error) {
	resp, err := h2Client().Get(args[0])
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	detail := fmt.Sprintf("%s %s: %s", resp.Proto, resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(detail + proxyError(resp))
	}
	return detail, nil
}

// grpcFrame is one length-prefixed gRPC message (not compressed).
func grpcFrame(msg []byte) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// checkGRPC makes a gRPC-shaped call to URL (a POST of one
// application/grpc message over HTTP/2, TE: trailers) and succeeds when
// the answer is HTTP/2, 200, one message, and the trailer grpc-status is
// 0; the detail names the message and the trailers.
func checkGRPC(args []string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, args[0], bytes.NewReader(grpcFrame([]byte("sgtest-ping"))))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := h2Client().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: %s%s", resp.Proto, resp.Status, strings.TrimSpace(string(body)), proxyError(resp))
	}
	if resp.ProtoMajor != 2 {
		return "", fmt.Errorf("the answer came in %s, not HTTP/2", resp.Proto)
	}
	if len(body) < 5 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
		return "", fmt.Errorf("the answer is not one gRPC message: %q", body)
	}
	st, msg := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	detail := fmt.Sprintf("%s message=%q grpc-status=%s grpc-message=%s", resp.Proto, body[5:], st, msg)
	if st != "0" {
		return "", errors.New(detail)
	}
	return detail, nil
}

// proxyError is " [X-Proxy-Error: …]" when the answer has one.
func proxyError(resp *http.Response) string {
	if e := resp.Header.Get("X-Proxy-Error"); e != "" {
		return " [X-Proxy-Error: " + e + "]"
	}
	return ""
}

// checkWebSocket opens a CONNECT tunnel through $HTTPS_PROXY to wss://URL's
// host, upgrades URL's path to a WebSocket (http/1.1 inside TLS, the
// system's roots), sends one line and succeeds when the same line comes
// back. A refused upgrade fails with its status and X-Proxy-Error.
func checkWebSocket(args []string) (string, error) {
	u, err := url.Parse(args[0])
	if err != nil {
		return "", err
	}
	if u.Scheme != "wss" || u.Port() == "" {
		return "", errors.New("want wss://HOST:PORT/PATH")
	}
	pu, err := url.Parse(firstEnv("HTTPS_PROXY", "https_proxy"))
	if err != nil || pu.Host == "" {
		return "", fmt.Errorf("no usable HTTPS_PROXY: %v", err)
	}
	c, err := net.DialTimeout("tcp", pu.Host, timeout)
	if err != nil {
		return "", fmt.Errorf("dialling the proxy: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	auth := ""
	if pu.User != nil {
		pw, _ := pu.User.Password()
		auth = "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(pu.User.Username()+":"+pw)) + "\r\n"
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", u.Host, u.Host, auth)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return "", fmt.Errorf("reading the CONNECT answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("CONNECT: %s%s", resp.Status, proxyError(resp))
	}
	tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		return "", fmt.Errorf("TLS: %w", err)
	}
	fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: c2d0ZXN0LXdzLWtleS0wMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", u.RequestURI(), u.Host)
	tbr := bufio.NewReader(tc)
	up, err := http.ReadResponse(tbr, nil)
	if err != nil {
		return "", fmt.Errorf("reading the upgrade answer: %w", err)
	}
	if up.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(up.Body, 4096))
		return "", fmt.Errorf("upgrade: %s%s: %s", up.Status, proxyError(up), strings.TrimSpace(string(body)))
	}
	if _, err := io.WriteString(tc, "sgtest-ws-hello\n"); err != nil {
		return "", err
	}
	line, err := tbr.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("after the upgrade: %w", err)
	}
	return fmt.Sprintf("%s, then %q", up.Status, strings.TrimSpace(line)), nil
}

// firstEnv is the first of the variables that is set ("" when none).
func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

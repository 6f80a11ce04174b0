//go:build linux

package sandbox

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The clients a command in the sandbox uses to reach sandgate's proxies:
// proxy URLs as CMD's environment gives them (HTTP_PROXY, ALL_PROXY), with
// the run's credentials in them for the identity backend.

// proxyDial connects to the proxy of proxyURL; the connection gives up
// after 10 seconds.
func proxyDial(proxyURL string) (net.Conn, *url.URL, error) {
	u, err := url.Parse(proxyURL)
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("bad proxy URL %q", proxyURL)
	}
	c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, u, nil
}

// proxyHTTPGet sends GET http://target/ through the HTTP proxy of proxyURL,
// with its credentials (Proxy-Authorization) when auth, and returns the
// response's status line and body. err is set only when the proxy could
// not be reached.
func proxyHTTPGet(proxyURL, target string, auth bool) (status, body string, err error) {
	c, u, err := proxyDial(proxyURL)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	req := fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, target)
	if auth {
		pass, _ := u.User.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)) + "\r\n"
	}
	fmt.Fprint(c, req+"\r\n")
	b, _ := io.ReadAll(c)
	status, _, _ = strings.Cut(string(b), "\r\n")
	if _, after, ok := strings.Cut(string(b), "\r\n\r\n"); ok {
		body = strings.TrimSpace(after)
	}
	return status, body, nil
}

// socksLine connects to host:port (an IPv4 address or a name) through the
// SOCKS5 proxy of proxyURL, offering username/password with the URL's
// credentials when auth and "no authentication" otherwise, and returns "ok"
// and the first line the target sends, or what went wrong: "dial-proxy
// ERRNO", "method XX" (the proxy chose another method), "auth ...",
// "refused N" (the reply code), ...
func socksLine(proxyURL, host, port string, auth bool) string {
	c, u, err := proxyDial(proxyURL)
	if err != nil {
		return "dial-proxy " + errName(err)
	}
	defer c.Close()
	method := byte(0)
	if auth {
		method = 2
	}
	c.Write([]byte{5, 1, method})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return "hello " + err.Error()
	}
	if sel[1] != method {
		return fmt.Sprintf("method %02x", sel[1])
	}
	if auth {
		pass, _ := u.User.Password()
		user := u.User.Username()
		msg := append([]byte{1, byte(len(user))}, user...)
		msg = append(append(msg, byte(len(pass))), pass...)
		c.Write(msg)
		var st [2]byte
		if _, err := io.ReadFull(c, st[:]); err != nil || st[1] != 0 {
			return fmt.Sprintf("auth %v %v", st, err)
		}
	}
	p, _ := strconv.Atoi(port)
	req := append([]byte{5, 1, 0, 3, byte(len(host))}, host...)
	if ip := net.ParseIP(host).To4(); ip != nil {
		req = append([]byte{5, 1, 0, 1}, ip...)
	}
	c.Write(append(req, byte(p>>8), byte(p)))
	var rep [4]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return "reply " + err.Error()
	}
	if rep[1] != 0 {
		return fmt.Sprintf("refused %d", rep[1])
	}
	skip := 2 // the bound port, after the address
	switch rep[3] {
	case 1:
		skip += 4
	case 4:
		skip += 16
	case 3:
		var l [1]byte
		io.ReadFull(c, l[:])
		skip += int(l[0])
	}
	io.ReadFull(c, make([]byte, skip))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return "ok " + strings.TrimSpace(line)
}

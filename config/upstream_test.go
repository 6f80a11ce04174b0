package config

import (
	"errors"
	"strings"
	"testing"
)

// TestProxyUpstream: [proxy] upstream and upstream_send are read, and a bad
// value is an error naming the file, line and key, never the password.
func TestProxyUpstream(t *testing.T) {
	f, err := Parse("c.toml", []byte("[proxy]\nupstream = \"http://u:pw@192.0.2.1:3128\"\nupstream_send = \"address\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Proxy.Upstream != "http://u:pw@192.0.2.1:3128" || f.Proxy.UpstreamSend != "address" {
		t.Errorf("Proxy = %+v", f.Proxy)
	}
	if _, err := Parse("c.toml", []byte("[proxy]\nupstream = \"env\"\n")); err != nil {
		t.Errorf("upstream = \"env\": %v", err)
	}
	for _, tt := range []struct {
		name, src, entry string
		line             int
	}{
		{"no port", "[proxy]\nmax_conns = 3\nupstream = \"http://u:Secr3tPw@192.0.2.1\"\n", "proxy.upstream", 3},
		{"scheme", "[proxy]\nupstream = \"ftp://u:Secr3tPw@192.0.2.1:21\"\n", "proxy.upstream", 2},
		{"send", "[proxy]\nupstream = \"http://192.0.2.1:3128\"\nupstream_send = \"ip\"\n", "proxy.upstream_send", 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tt.src))
			var ce *Error
			if !errors.As(err, &ce) || ce.Entry != tt.entry || ce.Line != tt.line {
				t.Fatalf("Parse = %v; want a config error for %s at line %d", err, tt.entry, tt.line)
			}
			if strings.Contains(err.Error(), "Secr3tPw") {
				t.Errorf("error repeats the password: %v", err)
			}
		})
	}
}

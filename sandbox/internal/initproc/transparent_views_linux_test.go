//go:build linux

package initproc

import (
	"reflect"
	"testing"

	"github.com/sandgate/sandgate/sandbox/internal/initproto"
)

// TestWithoutTransparentViews: a transparent path that cannot be set up
// drops its own views and keeps every other replacement file (the trust
// bundles of Spec.TrustPEM).
func TestWithoutTransparentViews(t *testing.T) {
	hosts := initproto.ReplaceFile{Source: "/tmp/r/hosts", Target: "/etc/hosts", Transparent: true}
	resolv := initproto.ReplaceFile{Source: "/tmp/r/resolv.conf", Target: "/etc/resolv.conf", Transparent: true}
	trustDir := initproto.ReplaceFile{Source: "/tmp/t", Target: "/tmp/t"}
	bundle := initproto.ReplaceFile{Source: "/tmp/t/ca.pem", Target: "/etc/ssl/certs/ca-certificates.crt"}
	for _, tc := range []struct {
		name string
		in   []initproto.ReplaceFile
		want []initproto.ReplaceFile
	}{
		{"none", nil, nil},
		{"only the views", []initproto.ReplaceFile{hosts, resolv}, nil},
		{"views and trust", []initproto.ReplaceFile{hosts, resolv, trustDir, bundle}, []initproto.ReplaceFile{trustDir, bundle}},
		{"only trust", []initproto.ReplaceFile{trustDir, bundle}, []initproto.ReplaceFile{trustDir, bundle}},
	} {
		if got := withoutTransparentViews(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

//go:build linux

package sandbox

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
)

// BenchmarkRunTrue measures a whole sandboxed `true` (namespaces, init,
// command, teardown) from inside one process, per network mode.
func BenchmarkRunTrue(b *testing.B) {
	pol, err := policy.New(policy.Config{Allow: []string{"192.0.2.1:80"}})
	if err != nil {
		b.Fatal(err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	for _, n := range []Network{NetworkNone, NetworkProxy, NetworkFull} {
		b.Run(n.String(), func(b *testing.B) {
			spec := Spec{Args: []string{"true"}, Network: n, Gate: &egress.Gate{Policy: pol},
				Executable: testBinary(), Stdin: devnull, Stdout: devnull, Stderr: devnull}
			for i := 0; i < b.N; i++ {
				res, err := Run(context.Background(), spec)
				if err != nil || res.ExitCode != 0 {
					b.Fatalf("%+v %v", res, err)
				}
			}
		})
	}
}

// BenchmarkUnshareTrue is the reference: `unshare -Urn true`.
func BenchmarkUnshareTrue(b *testing.B) {
	path, err := exec.LookPath("unshare")
	if err != nil {
		b.Skip("no unshare here")
	}
	for i := 0; i < b.N; i++ {
		if err := exec.Command(path, "-Urn", "true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

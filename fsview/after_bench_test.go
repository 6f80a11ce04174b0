package fsview

import (
	"path/filepath"
	"testing"
)

// BenchmarkAfterRun is the check after a run that changed nothing, for an
// empty workspace and for this repository's checkout (about 50
// directories): one lstat per directory planning read, the repository's
// configuration read again.
func BenchmarkAfterRun(b *testing.B) {
	ws, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, ws string }{{"empty", b.TempDir()}, {"checkout", ws}} {
		b.Run(c.name, func(b *testing.B) {
			p, err := NewPlan(Profile{Mode: ModeWorkspace, Workspace: c.ws}, OSFS{})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, found := p.AfterRun(OSFS{}, nil); len(found) != 0 {
					b.Fatalf("found %v", found)
				}
			}
			sc := p.after.rescan(OSFS{})
			b.ReportMetric(float64(len(p.after.dirs)), "dirs")
			b.ReportMetric(float64(sc.dirs), "read")
		})
	}
}

package fsview

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkNewPlanCheckout plans this repository's checkout as the
// workspace with the caller's real home, as `sandgate run -- true` does
// in the checkout (the figure docs/benchmarks.md calls the view's plan).
func BenchmarkNewPlanCheckout(b *testing.B) {
	ws, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	exe, _ := os.Executable()
	pr := Profile{Mode: ModeWorkspace, Workspace: ws, Home: home, TmpDir: os.Getenv("TMPDIR"),
		ConfigPaths: []string{"~/.config/sandgate/config.toml", "~/.config/sandgate"},
		Executable:  exe, Command: "/usr/bin/true"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := NewPlan(pr, OSFS{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(p.Scanned), "dirs")
	}
}

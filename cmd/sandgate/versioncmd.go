package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion is what `sandgate version` and `sandgate --version` print:
// the module version, the VCS revision, time and modified flag when the
// binary was built from a checkout with VCS stamping, the Go version and the
// target OS/architecture.
type buildVersion struct {
	Module   string // module version, "(devel)" for a checkout build
	Revision string // VCS revision, "unknown" without VCS stamping
	Time     string // commit time, "unknown" without VCS stamping
	Modified string // "true", "false" or "unknown"
	Go       string
	Platform string
}

// readVersion reads the build information the Go linker stamped into the
// binary. Built with -buildvcs=false (as CI does) the VCS fields are
// "unknown"; without module information at all the version is "(devel)".
func readVersion(info *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Module: "(devel)", Revision: "unknown", Time: "unknown", Modified: "unknown",
		Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if !ok || info == nil {
		return v
	}
	if info.Main.Version != "" {
		v.Module = info.Main.Version
	}
	if info.GoVersion != "" {
		v.Go = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value
		}
	}
	return v
}

// write prints the version in its fixed multi-line form.
func (v buildVersion) write(w io.Writer) {
	fmt.Fprintf(w, "sandgate %s\n", v.Module)
	fmt.Fprintf(w, "revision: %s\n", v.Revision)
	fmt.Fprintf(w, "commit time: %s\n", v.Time)
	fmt.Fprintf(w, "modified: %s\n", v.Modified)
	fmt.Fprintf(w, "go: %s\n", v.Go)
	fmt.Fprintf(w, "platform: %s\n", v.Platform)
}

// currentVersion is the version of the running binary.
func currentVersion() buildVersion {
	info, ok := debug.ReadBuildInfo()
	return readVersion(info, ok)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print sandgate's version, VCS revision, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			currentVersion().write(cmd.OutOrStdout())
			return nil
		},
	}
}

// versionFlag makes `sandgate --version` print what `sandgate version` does.
func versionFlag(root *cobra.Command) {
	var b strings.Builder
	currentVersion().write(&b)
	root.Version = currentVersion().Module // cobra adds --version only when Version is non-empty
	// The text is literal: no template actions in it.
	root.SetVersionTemplate(strings.ReplaceAll(b.String(), "{{", "{{`{{`}}"))
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sandgate/sandgate/config"
	"github.com/sandgate/sandgate/envfilter"
	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/sandbox"
)

// defaultFSMode is the file system view of a run whose flags and
// configuration name none: the workspace view where sandgate has one
// (Linux), none elsewhere (yet).
func defaultFSMode() fsview.Mode {
	if runtime.GOOS == "linux" {
		return fsview.ModeWorkspace
	}
	return fsview.ModeHost
}

// hostFlags are run's flags about what of the host CMD gets besides the
// network: its file system view (package fsview) and its environment
// (package envfilter).
type hostFlags struct {
	fs        string   // --fs
	workspace string   // --workspace
	write     []string // --write
	hide      []string // --hide
	unhide    []string // --unhide
	env       []string // --env: secret-looking variables passed anyway
}

func (h *hostFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&h.fs, "fs", "", "file system view: workspace (the workspace and --write paths writable, $HOME copy-on-write, the rest read-only, credential stores hidden), readonly (only a private /tmp writable) or host (no restriction)")
	fs.StringVar(&h.workspace, "workspace", "", "the writable project directory of --fs workspace (default: the working directory)")
	fs.StringArrayVar(&h.write, "write", nil, "make PATH writable too (repeatable)")
	fs.StringArrayVar(&h.hide, "hide", nil, "hide PATH from CMD (reads as empty), besides the credential stores (repeatable)")
	fs.StringArrayVar(&h.unhide, "unhide", nil, "make a hidden PATH visible (read-only) again, e.g. ~/.ssh/known_hosts (repeatable)")
	fs.StringArrayVar(&h.env, "env", nil, "pass the secret-looking environment variable NAME (or every name starting with PREFIX, as PREFIX*) to CMD anyway (repeatable)")
}

// filterEnv gives spec the caller's environment without the secret-looking
// variables that neither --env nor the configuration's [environment] keep
// keeps, before sandbox.Run adds the proxy variables (whose credentialed
// URLs, on the identity backend, would look like secrets themselves). It
// returns the one line of the exit summary about them ("" when none were
// dropped).
func (h *hostFlags) filterEnv(cf *config.File, spec *sandbox.Spec) (string, error) {
	keep := cf.KeepEnv(h.env)
	for _, k := range h.env {
		if err := envfilter.CheckKeep(k); err != nil {
			return "", usageErr("--env: %w", err)
		}
	}
	env, dropped := envfilter.Filter(os.Environ(), keep)
	spec.Env = env
	if line := envfilter.Summary(dropped); line != "" {
		return "sandgate: " + line, nil
	}
	return "", nil
}

// view sets spec.View from the flags and the configuration's [filesystem]
// table, with sandgate's own files (the configuration, the binary, the
// audit file) never writable. Call it after the audit file was created and
// with spec.Args and spec.Env set. With --fs host (asked for) it prints one
// line saying so.
func (h *hostFlags) view(cf *config.File, spec *sandbox.Spec, auditPath string) error {
	abs := func(ps []string) []string {
		out := make([]string, 0, len(ps))
		for _, p := range ps {
			out = append(out, absFlagPath(p))
		}
		return out
	}
	v, err := cf.View(config.FilesystemFlags{Mode: h.fs, Workspace: absFlagPath(h.workspace),
		Write: abs(h.write), Hide: abs(h.hide), Unhide: abs(h.unhide)})
	if err != nil {
		return usageErr("%w", err)
	}
	if h.fs == "" && cf.Filesystem.Mode == "" {
		v.Mode = defaultFSMode()
	} else if v.Mode == fsview.ModeHost {
		fmt.Fprintln(os.Stderr, "sandgate: --fs host: no file system restriction; CMD can read and write everything you can")
	}
	if v.Mode == fsview.ModeHost {
		spec.View = &fsview.Profile{Mode: fsview.ModeHost}
		return nil
	}
	pr := &fsview.Profile{Mode: v.Mode, Write: v.Write, Hide: v.Hide, Unhide: v.Unhide,
		ConfigHome: os.Getenv("XDG_CONFIG_HOME"), TmpDir: os.Getenv("TMPDIR")}
	if v.Mode == fsview.ModeWorkspace {
		pr.Workspace = v.Workspace
		if pr.Workspace == "" {
			if pr.Workspace, err = os.Getwd(); err != nil {
				return fmt.Errorf("working directory: %w", err)
			}
		}
	}
	pr.Home, _ = os.UserHomeDir()
	if cf.Path != "" {
		pr.ConfigPaths = append(pr.ConfigPaths, absFlagPath(cf.Path))
	}
	if p, err := config.DefaultPath(); err == nil {
		pr.ConfigPaths = append(pr.ConfigPaths, p, filepath.Dir(p))
	}
	pr.Executable, _ = os.Executable()
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		pr.Invoked = absFlagPath(p)
	}
	if auditPath != "" {
		pr.AuditFile = absFlagPath(auditPath)
	}
	if p, err := lookPathIn(spec.Args[0], spec.Env); err == nil {
		pr.Command = p
	}
	pr.Visible = tmpPathEntries(spec.Env)
	spec.View = pr
	return nil
}

// absFlagPath makes a path given on the command line absolute (relative to
// the working directory); "" and paths starting with "~" stay as they are.
func absFlagPath(p string) string {
	if p == "" || strings.HasPrefix(p, "~") || filepath.IsAbs(p) {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// lookPathIn resolves the command name as CMD's PATH (in env) would, to an
// absolute path. A name with a slash is the path itself, whatever it is
// (a directory or a file that cannot be executed stays visible, so that
// CMD's exec fails as it would outside: exit 126, not 127).
func lookPathIn(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return absFlagPath(name), nil
	}
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			for _, d := range filepath.SplitList(v) {
				p := filepath.Join(d, name)
				if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
					return absFlagPath(p), nil
				}
			}
			return "", exec.ErrNotFound
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("looking up %s: %w", name, err)
	}
	return absFlagPath(p), nil
}

// tmpPathEntries are the PATH entries (of env) under /tmp: they must stay
// visible in the view's private /tmp.
func tmpPathEntries(env []string) []string {
	var out []string
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			for _, d := range filepath.SplitList(v) {
				if d == "/tmp" || strings.HasPrefix(d, "/tmp/") {
					if _, err := os.Stat(d); err == nil {
						out = append(out, d)
					}
				}
			}
			break
		}
	}
	return out
}

// viewError is err as run reports it: a path of the view that cannot be
// planned is a usage error (exit 2) naming it, with the configuration
// file's line when it came from there. ok is false for other errors.
func viewError(cf *config.File, err error) (error, bool) {
	var pe *fsview.PathError
	if !errors.As(err, &pe) {
		return nil, false
	}
	key := map[string]string{"workspace": "filesystem.workspace", "write": "filesystem.write",
		"hide": "filesystem.deny_read", "unhide": "filesystem.allow_read"}[pe.Field]
	if key != "" {
		return &exitError{code: exitUsage, err: cf.PathError(key, pe.Path, pe)}, true
	}
	return &exitError{code: exitUsage, err: pe}, true
}

// warnViewChanged warns about each never-writable path that changed during
// the run anyway (fsview.Plan.Changed) and each finding of the check after
// the run (fsview.Plan.AfterRun: a disarmed hook, a configuration
// variable that runs a program, a new code file), one line each.
func warnViewChanged(w io.Writer, paths []string, found []fsview.Finding) {
	for _, p := range paths {
		fmt.Fprintf(w, "sandgate: warning: %s, which CMD must not write, was created or replaced during the run; check it before you use it\n", p)
	}
	for _, f := range found {
		fmt.Fprintf(w, "sandgate: warning: %s\n", f)
	}
}

// printOnce prints line on stderr unless it is empty.
func printOnce(line string) {
	if line != "" {
		fmt.Fprintln(os.Stderr, line)
	}
}

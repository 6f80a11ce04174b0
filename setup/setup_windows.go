//go:build windows

package setup

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/windows"

	"github.com/sandgate/sandgate/accounts"
	"github.com/sandgate/sandgate/dirgrant"
	"github.com/sandgate/sandgate/ruleplan"
	"github.com/sandgate/sandgate/winfw"
	"github.com/sandgate/sandgate/winsec"
)

// On Windows, setup creates two local users (hidden from the logon screen,
// random passwords kept DPAPI-protected in a file only the installing
// account and SYSTEM can open) and a local group for them, and installs
// Windows Firewall block rules for the offline user (see package winfw).
// It needs an elevated administrator: when not elevated, Install and
// Uninstall print one line saying why and relaunch sandgate with the
// "runas" verb, which shows the UAC prompt.

// markerName and secretsName are the file names in the state directory.
const (
	markerName  = "setup.json"
	secretsName = "secrets.bin"
)

// resolve fills in every default; the state directory defaults to
// %ProgramData%\sandgate (the known folder, not the environment variable).
func (o Options) resolve() Options {
	o = o.WithDefaults()
	if o.StateDir == "" {
		pd, err := windows.KnownFolderPath(windows.FOLDERID_ProgramData, 0)
		if err != nil || pd == "" {
			pd = `C:\ProgramData`
		}
		o.StateDir = filepath.Join(pd, "sandgate")
	}
	return o
}

// MarkerPath returns the path of the setup marker for o
// (%ProgramData%\sandgate\setup.json by default).
func (o Options) MarkerPath() string {
	return filepath.Join(o.resolve().StateDir, markerName)
}

// LauncherPath returns where Install puts its copy of the sandgate binary
// (%ProgramData%\sandgate\bin\sandgate.exe), the program an identity
// run starts as the sandbox user: a binary under the caller's profile is
// not readable by the sandbox users, and this copy is writable only by
// administrators.
func (o Options) LauncherPath() string {
	return filepath.Join(o.resolve().StateDir, "bin", "sandgate.exe")
}

// SecretsPath returns the path of the file holding the sandbox users'
// DPAPI-protected passwords.
func (o Options) SecretsPath() string {
	return filepath.Join(o.resolve().StateDir, secretsName)
}

// GrantRecords returns where identity runs record their working-directory
// grants: nowhere on Windows yet (see package dirgrant).
func (o Options) GrantRecords() dirgrant.Records { return dirgrant.Records{} }

// Account is a sandbox user as an identity run needs it. On Windows UID,
// GID and Home are unused; SID and GroupSID identify the user and group.
type Account struct {
	Name     string
	UID      uint32
	GID      uint32
	Home     string
	SID      string
	GroupSID string
}

func validateNames(o Options) error {
	for _, n := range []string{o.OfflineUser, o.OnlineUser, o.Group} {
		if err := winsec.ValidAccountName(n); err != nil {
			return err
		}
	}
	if strings.EqualFold(o.OfflineUser, o.OnlineUser) {
		return fmt.Errorf("the offline and online users must differ (both are %s)", o.OfflineUser)
	}
	if !filepath.IsAbs(o.StateDir) {
		return fmt.Errorf("the state directory %q must be an absolute path", o.StateDir)
	}
	return nil
}

// Install copies this sandgate binary to LauncherPath, creates or adopts
// the two sandbox users and their group, sets
// new random passwords for both and stores them DPAPI-protected for the
// installing account, hides the users from the logon screen, installs the
// offline user's firewall rules in a fail-closed order (see
// winfw.PlanSteps), verifies them, and writes the marker last. It needs an
// elevated administrator: unelevated, it first works out in words what
// differs from what o wants (nothing: it returns at once, without a
// prompt), prints that on one line, and relaunches sandgate elevated
// ("runas"). A declined prompt returns an error wrapping
// winsec.ErrElevationCancelled. It returns each change in words.
func Install(o Options) (Marker, []string, error) { return install(o, stderrNotice) }

// stderrNotice is where Install and Uninstall say why the administrator
// prompt appears: one line on standard error.
func stderrNotice(msg string) { fmt.Fprintln(os.Stderr, "sandgate: "+msg) }

// reconcileNotify is Reconcile, saying why the administrator prompt
// appears (when it does) through notify.
func reconcileNotify(o Options, notify func(string)) (Marker, []string, error) {
	return install(o, notify)
}

// install is Install with the notice before the prompt going to notify.
func install(o Options, notify func(string)) (Marker, []string, error) {
	o = o.resolve()
	if err := validateNames(o); err != nil {
		return Marker{}, nil, err
	}
	if _, err := o.Plan(); err != nil {
		return Marker{}, nil, err
	}
	if !winsec.IsElevated() {
		reasons, err := Check(o)
		if err != nil {
			return Marker{}, nil, err
		}
		if len(reasons) == 0 {
			m, err := ReadMarker(o.MarkerPath())
			return m, nil, err
		}
		changes, err := runElevated(opInstall, o, "setting up the sandbox users and firewall rules", reasons, notify)
		if err != nil {
			return Marker{}, changes, err
		}
		m, err := ReadMarker(o.MarkerPath())
		return m, changes, err
	}
	return installElevated(o, func(string) {})
}

// Reconcile brings an installed setup to o; on Windows it is Install
// (which, unelevated, explains the difference and asks for elevation).
func Reconcile(o Options) (Marker, []string, error) { return Install(o) }

func installElevated(o Options, progress func(string)) (Marker, []string, error) {
	var changes []string
	note := func(s string) {
		changes = append(changes, s)
		progress(s)
	}
	plan, err := o.Plan()
	if err != nil {
		return Marker{}, nil, err
	}
	if err := winsec.EnsureStateDir(o.StateDir); err != nil {
		return Marker{}, changes, err
	}
	for _, ch := range RepairGrants(o.GrantRecords()) {
		note(ch)
	}
	if ch, err := ensureLockFiles(o.StateDir); err != nil {
		return Marker{}, changes, err
	} else if ch != "" {
		note(ch)
	}
	if ch, err := installLauncher(o); err != nil {
		return Marker{}, changes, err
	} else if ch != "" {
		note(ch)
	}
	var pw [2]string
	for i := range pw {
		if pw[i], err = winsec.NewPassword(rand.Reader); err != nil {
			return Marker{}, changes, err
		}
	}
	offSID, created, err := accounts.EnsureUser(o.OfflineUser, pw[0], "sandgate offline sandbox user (network only through sandgate's proxy)")
	if err != nil {
		return Marker{}, changes, err
	}
	note(userChange(o.OfflineUser, offSID, created))
	onSID, created, err := accounts.EnsureUser(o.OnlineUser, pw[1], "sandgate online sandbox user (direct network)")
	if err != nil {
		return Marker{}, changes, err
	}
	note(userChange(o.OnlineUser, onSID, created))
	groupSID, err := accounts.EnsureGroup(o.Group, "sandgate sandbox users")
	if err != nil {
		return Marker{}, changes, err
	}
	for _, s := range []string{offSID, onSID} {
		if err := accounts.AddToGroup(o.Group, s); err != nil {
			return Marker{}, changes, err
		}
	}
	note(fmt.Sprintf("local group %s (%s) has both sandbox users", o.Group, groupSID))
	for _, u := range []string{o.OfflineUser, o.OnlineUser} {
		if err := accounts.HideFromLogon(u); err != nil {
			return Marker{}, changes, err
		}
	}
	if err := winsec.WriteSecrets(o.SecretsPath(), winsec.Secrets{OfflinePassword: pw[0], OnlinePassword: pw[1]}); err != nil {
		return Marker{}, changes, err
	}
	note("stored the new passwords, DPAPI-protected for this account, in " + o.SecretsPath())

	rules, err := winfw.Render(plan, offSID)
	if err != nil {
		return Marker{}, changes, err
	}
	tr, err := winfw.Transition(offSID)
	if err != nil {
		return Marker{}, changes, err
	}
	steps, err := winfw.ApplyRules(rules, tr, nil)
	for _, s := range steps {
		if s.Op != winfw.OpRefresh {
			note(fmt.Sprintf("firewall: %s", s))
		}
	}
	if err != nil {
		return Marker{}, changes, err
	}
	note(fmt.Sprintf("firewall rules for %s verified: %s", o.OfflineUser, plan.Summary()))

	m := Marker{
		SetupVersion:      Version,
		PlanVersion:       ruleplan.Version,
		OfflineUser:       o.OfflineUser,
		OnlineUser:        o.OnlineUser,
		Group:             o.Group,
		OfflineID:         offSID,
		OnlineID:          onSID,
		GroupID:           groupSID,
		ProxyPorts:        plan.ProxyPorts,
		AllowLocalBinding: plan.AllowLocalBinding,
		RulesDigest:       plan.Digest(),
		InstalledAt:       time.Now().UTC().Truncate(time.Second),
		InstalledBy:       windowsBuildName(),
	}
	if err := WriteMarker(o.MarkerPath(), m); err != nil {
		return Marker{}, changes, err
	}
	note("wrote the setup marker " + o.MarkerPath())
	return m, changes, nil
}

// installLauncher copies this sandgate binary to LauncherPath when the
// copy there differs, through a temporary file renamed over it. The
// directory inherits the state directory's permissions (administrators
// write, users read and execute).
func installLauncher(o Options) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding sandgate's own path: %w", err)
	}
	same, err := sameFile(self, o.LauncherPath())
	if err != nil {
		return "", err
	}
	if same {
		return "", nil
	}
	dst := o.LauncherPath()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", filepath.Dir(dst), err)
	}
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", self, err)
	}
	defer src.Close()
	tmp := dst + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	_, cerr := io.Copy(f, src)
	serr := f.Sync()
	if err := errors.Join(cerr, serr, f.Close()); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("installing %s: %w", dst, err)
	}
	return "installed the launcher " + dst + " (a copy of " + self + ")", nil
}

// sameFile reports whether two files have the same contents (a missing b
// is false, not an error).
func sameFile(a, b string) (bool, error) {
	ha, err := fileDigest(a)
	if err != nil {
		return false, err
	}
	hb, err := fileDigest(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ha == hb, nil
}

func fileDigest(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("reading %s: %w", path, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// launcherProblems says when the installed launcher is missing or is not
// this sandgate build.
func launcherProblems(o Options) []string {
	self, err := os.Executable()
	if err != nil {
		return []string{"cannot find sandgate's own path: " + err.Error()}
	}
	same, err := sameFile(self, o.LauncherPath())
	switch {
	case err != nil:
		return []string{"cannot compare the installed launcher: " + err.Error()}
	case !same:
		return []string{fmt.Sprintf("the installed launcher %s is missing or is another sandgate build than %s", o.LauncherPath(), self)}
	}
	return nil
}

func userChange(name, sid string, created bool) string {
	if created {
		return fmt.Sprintf("created local user %s (%s), hidden from the logon screen, with a new random password", name, sid)
	}
	return fmt.Sprintf("adopted local user %s (%s): new random password, hidden from the logon screen", name, sid)
}

func windowsBuildName() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return "sandgate " + bi.Main.Version + " (" + bi.GoVersion + ")"
	}
	return "sandgate"
}

// Check compares the live state (marker, users, group, logon-screen
// entries, password file, firewall rules and whether they are in effect)
// with what Install(o) would make it, and returns each difference in plain
// words; nil means current. It needs no elevation.
func Check(o Options) ([]string, error) {
	o = o.resolve()
	plan, err := o.Plan()
	if err != nil {
		return nil, err
	}
	var out []string
	m, merr := ReadMarker(o.MarkerPath())
	switch {
	case errors.Is(merr, ErrNotInstalled):
		return []string{fmt.Sprintf("sandgate setup has not been run (no marker at %s)", o.MarkerPath())}, nil
	case merr != nil:
		out = append(out, merr.Error())
	default:
		out = append(out, Drift(m, o)...)
	}
	acc, d := liveAccounts(o.OfflineUser, o.OnlineUser, o.Group, m)
	out = append(out, d...)
	out = append(out, secretsProblems(o)...)
	out = append(out, launcherProblems(o)...)
	out = append(out, grantProblems(o.GrantRecords())...)
	if acc.offSID != "" {
		rules, err := winfw.Render(plan, acc.offSID)
		if err != nil {
			return out, err
		}
		d, err := winfw.InstalledDifferences(rules)
		if err != nil {
			out = append(out, "the firewall rules could not be read: "+err.Error())
		}
		out = append(out, d...)
	}
	return out, nil
}

// Status is the check an identity run makes before it starts: it reads the
// marker (ErrNotInstalled when there is none) and returns it with every way
// in which the live state differs from what the marker records: versions,
// users or group missing or changed, the password file unreadable for this
// account, the firewall rules missing, different from the marker's ports
// and mode, or not in effect. A run must not start while drift is
// non-empty. It needs no elevation.
func Status(o Options) (Marker, []string, error) {
	o = o.resolve()
	m, err := ReadMarker(o.MarkerPath())
	if err != nil {
		return Marker{}, nil, err
	}
	plan, drift, ok := markerDrift(m)
	if !ok {
		return m, drift, nil
	}
	acc, d := liveAccounts(m.OfflineUser, m.OnlineUser, m.Group, m)
	drift = append(drift, d...)
	drift = append(drift, secretsProblems(o)...)
	drift = append(drift, launcherProblems(o)...)
	if acc.offSID == "" {
		return m, drift, nil
	}
	rules, err := winfw.Render(plan, acc.offSID)
	if err != nil {
		return m, drift, err
	}
	d, err = winfw.InstalledDifferences(rules)
	if err != nil {
		drift = append(drift, "the firewall rules could not be read: "+err.Error())
	}
	return m, append(drift, d...), nil
}

type liveAcc struct{ offSID, onSID, groupSID string }

// liveAccounts looks the users and group up and compares their SIDs with
// the marker's (when m has them).
func liveAccounts(offline, online, group string, m Marker) (liveAcc, []string) {
	var a liveAcc
	var d []string
	look := func(name, rec string, lookup func(string) (string, error), what string) string {
		sid, err := lookup(name)
		if err != nil {
			d = append(d, fmt.Sprintf("the %s %s is missing (%v)", what, name, err))
			return ""
		}
		if rec != "" && !strings.EqualFold(rec, sid) {
			d = append(d, fmt.Sprintf("the %s %s has SID %s, but setup recorded %s (it was deleted and re-created)", what, name, sid, rec))
			return ""
		}
		return sid
	}
	a.offSID = look(offline, m.OfflineID, accounts.LookupUser, "offline sandbox user")
	a.onSID = look(online, m.OnlineID, accounts.LookupUser, "online sandbox user")
	a.groupSID = look(group, m.GroupID, accounts.LookupGroup, "sandbox group")
	for _, u := range []string{offline, online} {
		if !accounts.IsHiddenFromLogon(u) {
			d = append(d, fmt.Sprintf("the user %s is not hidden from the logon screen", u))
		}
	}
	return a, d
}

func secretsProblems(o Options) []string {
	if _, err := winsec.ReadSecrets(o.SecretsPath()); err != nil {
		return []string{err.Error()}
	}
	return nil
}

// Identity returns the account of one sandbox identity recorded in m. It
// fails when the user or group is missing or differs from the marker's.
func Identity(o Options, m Marker, id ruleplan.Identity) (Account, error) {
	var name, rec string
	switch id {
	case ruleplan.Offline:
		name, rec = m.OfflineUser, m.OfflineID
	case ruleplan.Online:
		name, rec = m.OnlineUser, m.OnlineID
	default:
		return Account{}, fmt.Errorf("unknown sandbox identity %q", id)
	}
	sid, err := accounts.LookupUser(name)
	if err != nil || !strings.EqualFold(sid, rec) {
		return Account{}, fmt.Errorf("the %s sandbox user %s is not as set up (%w); run `sandgate setup`", id, name, errOr(err, "SID "+sid+" differs from the recorded "+rec))
	}
	gsid, err := accounts.LookupGroup(m.Group)
	if err != nil || !strings.EqualFold(gsid, m.GroupID) {
		return Account{}, fmt.Errorf("the sandbox group %s is not as set up (%w); run `sandgate setup`", m.Group, errOr(err, "SID "+gsid+" differs from the recorded "+m.GroupID))
	}
	return Account{Name: name, SID: sid, GroupSID: gsid}, nil
}

// errOr returns err, or an error saying s when err is nil.
func errOr(err error, s string) error {
	if err != nil {
		return err
	}
	return errors.New(s)
}

// Passwords returns the sandbox users' passwords, decrypted with this
// account's DPAPI key (only the account that ran setup can).
func Passwords(o Options) (offline, online string, err error) {
	s, err := winsec.ReadSecrets(o.SecretsPath())
	if err != nil {
		return "", "", err
	}
	return s.OfflinePassword, s.OnlinePassword, nil
}

// Uninstall removes what Install made: the marker first (so no new
// identity run starts), then the two users (with their profiles), their
// logon-screen entries, the group, the firewall rules, the password file,
// and the state directory when it is left empty. Unelevated it explains
// and relaunches itself elevated, as Install does. Removing what is not
// there is not an error. It returns each change in words.
func Uninstall(o Options) ([]string, error) {
	o = o.resolve()
	if err := validateNames(o); err != nil {
		return nil, err
	}
	if !winsec.IsElevated() {
		return runElevated(opUninstall, o, "removing the sandbox users and firewall rules", nil, stderrNotice)
	}
	return uninstallElevated(o, func(string) {})
}

func uninstallElevated(o Options, progress func(string)) ([]string, error) {
	var changes []string
	note := func(s string) {
		changes = append(changes, s)
		progress(s)
	}
	if err := os.Remove(o.MarkerPath()); err == nil {
		note("removed the setup marker " + o.MarkerPath())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return changes, fmt.Errorf("removing the setup marker: %w", err)
	}
	for _, u := range []string{o.OfflineUser, o.OnlineUser} {
		if err := accounts.RemoveUser(u); err != nil {
			return changes, err
		}
		if err := accounts.UnhideFromLogon(u); err != nil {
			return changes, err
		}
		note("removed local user " + u + " and its profile")
	}
	if err := accounts.RemoveGroup(o.Group); err != nil {
		return changes, err
	}
	note("removed local group " + o.Group)
	steps, err := winfw.RemoveAll(nil)
	for _, s := range steps {
		note(fmt.Sprintf("firewall: %s", s))
	}
	if err != nil {
		return changes, err
	}
	for _, p := range []string{o.LauncherPath(), filepath.Dir(o.LauncherPath())} {
		if err := os.Remove(p); err == nil {
			note("removed " + p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return changes, fmt.Errorf("removing %s: %w", p, err)
		}
	}
	if err := os.Remove(o.SecretsPath()); err == nil {
		note("removed " + o.SecretsPath())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return changes, fmt.Errorf("removing the password file: %w", err)
	}
	if err := removeLockFiles(o.StateDir); err != nil {
		return changes, err
	}
	if err := os.Remove(o.StateDir); err == nil {
		note("removed " + o.StateDir)
	}
	return changes, nil
}

// ElevatedArg is the first argument of the elevated setup process
// (sandgate ElevatedArg REQUEST). The sandbox package's MaybeInit hands
// such a process to ElevatedMain.
const ElevatedArg = "__sandgate_windows_setup__"

const (
	opInstall   = "install"
	opUninstall = "uninstall"
)

// elevatedRequest is what the unelevated process asks of the elevated one.
type elevatedRequest struct {
	Op      string  `json:"op"`
	Options Options `json:"options"`
	Pipe    string  `json:"pipe"` // named pipe the elevated process reports on
}

// runElevated gives notify the notice, relaunches sandgate elevated for op and
// relays its report: each change it made, and its error. The report
// travels over a named pipe this process creates (first instance only,
// local clients only): the elevated process's own console is hidden.
func runElevated(op string, o Options, what string, reasons []string, notify func(string)) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding sandgate's own path to relaunch it elevated: %w", err)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	pipeName := fmt.Sprintf(`\\.\pipe\sandgate-setup-%x`, nonce)
	pipe, err := createReportPipe(pipeName)
	if err != nil {
		return nil, err
	}
	defer windows.CloseHandle(pipe)
	raw, err := json.Marshal(elevatedRequest{Op: op, Options: o, Pipe: pipeName})
	if err != nil {
		return nil, err
	}
	notify(strings.TrimPrefix(winsec.ElevationNotice(what, reasons), "sandgate: "))

	type report struct {
		changes []string
		errText string
	}
	reported := make(chan report, 1)
	go func() {
		var r report
		if err := windows.ConnectNamedPipe(pipe, nil); err != nil && !errors.Is(err, windows.ERROR_PIPE_CONNECTED) {
			reported <- r
			return
		}
		sc := bufio.NewScanner(handleReader{pipe})
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			kind, text, _ := strings.Cut(sc.Text(), " ")
			switch kind {
			case "change":
				r.changes = append(r.changes, text)
			case "error":
				r.errText = text
			}
		}
		reported <- r
	}()
	wd, _ := os.Getwd()
	code, err := winsec.RunElevated(exe, []string{ElevatedArg, base64.RawURLEncoding.EncodeToString(raw)}, wd)
	// Unblock the reader if the elevated process never connected.
	if p16, perr := windows.UTF16PtrFromString(pipeName); perr == nil {
		if h, cerr := windows.CreateFile(p16, windows.GENERIC_WRITE, 0, nil, windows.OPEN_EXISTING, 0, 0); cerr == nil {
			windows.CloseHandle(h)
		}
	}
	var r report
	select {
	case r = <-reported:
	case <-time.After(5 * time.Second):
	}
	if err != nil {
		return r.changes, err
	}
	if code != 0 {
		if r.errText == "" {
			r.errText = fmt.Sprintf("the elevated sandgate exited with status %d", code)
		}
		return r.changes, errors.New(r.errText)
	}
	return r.changes, nil
}

// createReportPipe creates the inbound named pipe of runElevated.
func createReportPipe(name string) (windows.Handle, error) {
	n16, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return 0, err
	}
	h, err := windows.CreateNamedPipe(n16,
		windows.PIPE_ACCESS_INBOUND|windows.FILE_FLAG_FIRST_PIPE_INSTANCE,
		windows.PIPE_TYPE_BYTE|windows.PIPE_READMODE_BYTE|windows.PIPE_WAIT|windows.PIPE_REJECT_REMOTE_CLIENTS,
		1, 0, 64<<10, 0, nil)
	if err != nil {
		return 0, fmt.Errorf("creating the pipe the elevated setup reports on: %w", err)
	}
	return h, nil
}

// ElevatedMain is the elevated setup process: it decodes the request in
// args[0], refuses to run unelevated, performs it, and reports each change
// and the error (if any) on the request's pipe. It returns the process's
// exit status (0 success, 125 failure).
func ElevatedMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "sandgate: elevated setup: bad arguments")
		return 125
	}
	raw, err := base64.RawURLEncoding.DecodeString(args[0])
	var req elevatedRequest
	if err == nil {
		err = json.Unmarshal(raw, &req)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandgate: elevated setup: bad request: %v\n", err)
		return 125
	}
	var out io.Writer = os.Stderr
	if strings.HasPrefix(req.Pipe, `\\.\pipe\sandgate-setup-`) {
		if f, err := os.OpenFile(req.Pipe, os.O_WRONLY, 0); err == nil {
			defer f.Close()
			out = f
		}
	}
	send := func(kind, text string) {
		fmt.Fprintf(out, "%s %s\n", kind, strings.ReplaceAll(text, "\n", " "))
	}
	fail := func(err error) int {
		send("error", err.Error())
		return 125
	}
	if !winsec.IsElevated() {
		return fail(errors.New("the relaunched setup is not elevated"))
	}
	o := req.Options.resolve()
	if err := validateNames(o); err != nil {
		return fail(err)
	}
	progress := func(s string) { send("change", s) }
	switch req.Op {
	case opInstall:
		_, _, err = installElevated(o, progress)
	case opUninstall:
		_, err = uninstallElevated(o, progress)
	default:
		err = fmt.Errorf("unknown setup operation %q", req.Op)
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// handleReader reads a pipe handle it does not own (no os.File, whose
// finalizer would close the handle a second time).
type handleReader struct{ h windows.Handle }

func (r handleReader) Read(p []byte) (int, error) {
	var n uint32
	err := windows.ReadFile(r.h, p, &n, nil)
	if errors.Is(err, windows.ERROR_BROKEN_PIPE) || (err == nil && n == 0 && len(p) > 0) {
		return int(n), io.EOF
	}
	return int(n), err
}

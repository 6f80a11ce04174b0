//go:build linux

package initproc

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/internal/starttrace"
	"github.com/sandgate/sandgate/proxyenv"
	"github.com/sandgate/sandgate/sandbox/internal/confine"
	"github.com/sandgate/sandgate/sandbox/internal/initproto"
	"github.com/sandgate/sandgate/sandbox/internal/unixgate"
)

// Main runs the init whose argv is args (see initproto.IsInit) and returns
// its exit status: CMD's, 125 when the sandbox could not be set up, 126 or
// 127 when CMD could not be executed.
func Main(args []string) int {
	// Every credential change below is per thread: the thread that starts
	// CMD is this one, locked for the life of the process.
	runtime.LockOSThread()
	starttrace.SetRole("init")
	starttrace.Mark("Go start-up")
	// Signals that arrive from now on are forwarded once CMD runs.
	// os/signal sets each up with a round trip to a thread of its own
	// (~0.3 ms for the five, the first time): it runs while the parent is
	// checked and the configuration read, and is complete before the
	// sandbox is set up.
	sigs := make(chan os.Signal, 16)
	caught := make(chan struct{})
	go func() {
		signal.Notify(sigs, initproto.ForwardedSignals...)
		close(caught)
	}()
	if err := dieWithParent(); err != nil {
		if !errors.Is(err, errParentGone) {
			report(initproto.Status{Kind: initproto.SetupError, Msg: "sandbox init: " + err.Error()})
		}
		return 125 // CMD never ran
	}

	// Nothing the init inherited besides stdio may reach CMD: not the
	// status socket, not descriptors sandgate itself inherited.
	if err := cloexecFrom(initproto.StatusFD); err != nil {
		report(initproto.Status{Kind: initproto.SetupError, Msg: "sandbox init: marking inherited descriptors close-on-exec: " + err.Error()})
		return 125
	}
	cfg, command, err := initproto.ReadConfig(args, initproto.StatusFD)
	if errors.Is(err, initproto.ErrNoConfig) {
		return 125 // the parent is gone; CMD never ran
	}
	if err != nil {
		report(initproto.Status{Kind: initproto.SetupError, Msg: "sandbox init: " + err.Error()})
		return 125
	}
	<-caught
	starttrace.Mark("config read")

	pid, httpPort, socksPort, listeners, err := setupAndStart(cfg, command)
	if err != nil {
		var ee *execError
		var se *setupError
		switch {
		case errors.Is(err, errParentGone):
			return 125 // nobody is left to report to; CMD never ran
		case errors.As(err, &ee):
			report(initproto.Status{Kind: initproto.ExecError, Msg: ee.msg, Code: ee.code})
			return ee.code
		case errors.As(err, &se):
			report(initproto.Status{Kind: initproto.SetupError, Msg: se.msg, Unavailable: se.unavailable})
		default:
			report(initproto.Status{Kind: initproto.SetupError, Msg: err.Error()})
		}
		return 125
	}
	report(initproto.Status{Kind: initproto.Started, HTTPPort: httpPort, SOCKSPort: socksPort, TransparentOff: transparentOff}, listeners...)
	starttrace.Mark("reported")
	for _, fd := range listeners {
		unix.Close(fd)
	}
	// The status socket stays open (close-on-exec, and never among CMD's
	// descriptors) for the report of CMD's end.

	go func() {
		for s := range sigs {
			_ = unix.Kill(pid, s.(syscall.Signal))
		}
	}()
	code := reap(pid)
	starttrace.Mark("CMD ended")
	reportExit(code)
	return code
}

// reportExit ends the sandbox's other processes once CMD has ended and
// reports CMD's exit status (initproto.Exited) before the init exits: the
// init's own exit tears down its namespaces, which the parent need not
// wait for. Only PID 1 of the sandbox's PID namespace can promise that
// nothing else is left (kill(-1) from it reaches every process of the
// namespace and of namespaces nested in it, and every one of them is its
// descendant, so none is left once it has no children); without that
// promise it sends nothing, and its exit, which makes the kernel kill the
// rest of the namespace, remains the end of the run.
func reportExit(code int) {
	if os.Getpid() != 1 {
		return
	}
	if err := killOthers(); err != nil {
		fmt.Fprintf(os.Stderr, "sandgate: sandbox init: %v\n", err)
		return
	}
	if err := reapAll(); err != nil {
		fmt.Fprintf(os.Stderr, "sandgate: sandbox init: %v\n", err)
		return
	}
	starttrace.Mark("others reaped")
	// The init's copies of CMD's streams are the last: closed, the
	// parent's relays (a pty's, or os/exec's pipes) see their end now,
	// not at the init's exit. Nothing is written to them after this.
	for fd := 0; fd <= 2; fd++ {
		unix.Close(fd)
	}
	// A failed report needs no word (and has no stderr left): the parent
	// then waits for the init's exit. After a report the init waits for
	// the parent to hang up (at the end of its run, or at its death),
	// so that the teardown of the sandbox's namespaces at the init's exit
	// does not compete for the CPUs with what the parent still does.
	if initproto.Send(initproto.StatusFD, initproto.Status{Kind: initproto.Exited, Code: code}) == nil {
		awaitHangUp(initproto.StatusFD)
	}
}

// awaitHangUp waits until the other end of the socket fd is closed.
func awaitHangUp(fd int) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			return
		}
	}
}

// killOthers sends SIGKILL to every process of the init's PID namespace
// but the init. The signal is sent from a thread of the init other than
// the locked-down one that started CMD (whose uid, capabilities and
// Landlock signal scope are CMD's): the other threads keep the init's
// privileges, to which every process of the sandbox is open.
func killOthers() error {
	done := make(chan error, 1)
	go func() {
		err := unix.Kill(-1, unix.SIGKILL)
		if err == unix.ESRCH {
			err = nil // nothing else is left
		}
		done <- err
	}()
	if err := <-done; err != nil {
		return fmt.Errorf("killing what CMD left: %w", err)
	}
	return nil
}

// reapAll reaps every child of the init until none is left.
func reapAll() error {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		switch err {
		case nil, unix.EINTR:
		case unix.ECHILD:
			return nil
		default:
			return fmt.Errorf("reaping what CMD left: %w", err)
		}
	}
}

// The init dies with the sandgate process that started it, however that
// process dies: sandgate starts it with a parent-death signal (SIGKILL),
// whose delivery ends the init, and with it, as the PID namespace's init,
// every process of the sandbox. The signal is armed on the thread that
// starts CMD too (the thread that is the sandbox user in an identity run:
// confine keeps it across that credential change, which clears it). If the
// parent died before the signal was armed (when the init was forked, or
// during the credential change), nothing will ever send it: the init then
// checks that its parent is still there, and exits if not, before CMD
// starts. In a new PID namespace getppid() says nothing (it is 0 for the
// namespace's init); the status socket does: the parent holds its other
// end until the init has exited.

// errParentGone says that the parent that started the init has died.
var errParentGone = errors.New("sandgate, which started this sandbox, is gone")

// dieWithParent arms the calling thread's parent-death signal and checks
// that the parent has not died already.
func dieWithParent() error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("arming the parent-death signal: %w", err)
	}
	return checkParent()
}

// checkParent returns errParentGone when the parent has exited.
func checkParent() error { return peerGone(initproto.StatusFD) }

// peerGone returns errParentGone when the other end of the socket fd is
// closed (only the parent holds the status socket's other end, until it
// exits).
func peerGone(fd int) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking for the parent: %w", err)
		}
		if n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			return errParentGone
		}
		return nil
	}
}

// report sends the init's one report to the parent. When even that fails,
// the init's stderr (CMD's) is the only way left to say what happened.
func report(st initproto.Status, fds ...int) {
	if err := initproto.Send(initproto.StatusFD, st, fds...); err != nil {
		fmt.Fprintf(os.Stderr, "sandgate: sandbox init: %s (status: %v)\n", st.Msg, err)
	}
}

// setupError is a failure to set the sandbox up; unavailable marks the ones
// the kernel refused (permissions, missing features).
type setupError struct {
	msg         string
	unavailable bool
}

func (e *setupError) Error() string { return e.msg }

// setupErr is a setupError saying what failed (format, args) and why (err).
func setupErr(err error, format string, args ...any) *setupError {
	return asSetupError(fmt.Errorf(format+": %w", append(args, err)...))
}

// asSetupError is err as a setupError, unavailable when the kernel refused
// (permissions, missing features).
func asSetupError(err error) *setupError {
	return &setupError{msg: err.Error(), unavailable: errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, confine.ErrUnsupported)}
}

// execError is a failure to execute CMD (exit code 126 or 127).
type execError struct {
	code int
	msg  string
}

func (e *execError) Error() string { return e.msg }

// cloexecFrom marks every descriptor >= first close-on-exec.
func cloexecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11: walk the descriptor table.
	ents, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close_range: %w; listing /proc/self/fd: %w", err, rerr)
	}
	for _, e := range ents {
		fd, cerr := strconv.Atoi(e.Name())
		if cerr != nil || fd < first {
			continue
		}
		if _, ferr := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); ferr != nil && ferr != unix.EBADF {
			return fmt.Errorf("fcntl(%d, F_SETFD): %w", fd, ferr)
		}
	}
	return nil
}

// reap waits for every child (PID 1 inherits orphans) and returns CMD's
// status when CMD ends. Whatever else is left in the PID namespace is
// then killed by reportExit, or by the kernel at the init's exit.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// No children left at all: CMD is gone without us seeing it.
			// The report went out long ago: stderr is all there is.
			fmt.Fprintf(os.Stderr, "sandgate: sandbox init: wait: %v\n", err)
			return 125
		}
		if got != pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return 128 + int(ws.Signal())
		}
	}
}

// setupAndStart prepares the namespaces, locks this thread down and starts
// CMD from it. It returns CMD's pid and, with NetworkProxy, the listening
// sockets (HTTP, SOCKS5) to hand to the parent.
func setupAndStart(cfg initproto.Config, args []string) (pid, httpPort, socksPort int, listeners []int, err error) {
	if cfg.Identity != nil {
		pid, err = setupAndStartIdentity(cfg, args)
		return pid, 0, 0, nil, err
	}
	// The allowed unix sockets first: the view may hide them.
	gate, err := openGate(cfg.UnixSockets)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	// The network on a goroutine of its own while this thread mounts the
	// view (see startNetwork); it is waited for before anything reads
	// its ports, and on every failure.
	network := startNetwork(cfg)
	fail := func(err error) (int, int, int, []int, error) {
		closeFDs(network().fds)
		return 0, 0, 0, nil, err
	}
	// Mounts made here must never propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fail(setupErr(err, "making the sandbox's mounts private"))
	}
	// The replacement files first: their sources lie where the view may
	// put a private /tmp; a bind made now stays in the view.
	if err := applyReplacements(cfg.Replace); err != nil {
		return fail(err)
	}
	view, err := applyView(cfg)
	if err != nil {
		return fail(err)
	}
	starttrace.Mark("file system view mounted")
	// A /proc of the new PID namespace: CMD sees only the sandbox's processes.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fail(setupErr(err, "mounting /proc for the sandbox's PID namespace (is /proc partly masked, e.g. inside a container?)"))
	}
	starttrace.Mark("/proc mounted")
	net := network()
	if net.err != nil {
		return 0, 0, 0, nil, net.err
	}
	httpPort, socksPort, listeners = net.httpPort, net.socksPort, net.fds
	starttrace.Mark("network ready")
	env := os.Environ()
	switch cfg.Network {
	case initproto.NetProxy:
		env = proxyenv.Merge(env, proxyenv.Vars(proxyenv.Config{
			HTTP:       "http://127.0.0.1:" + strconv.Itoa(httpPort),
			SOCKS:      "socks5h://127.0.0.1:" + strconv.Itoa(socksPort),
			NoProxy:    proxyenv.DefaultNoProxy,
			Executable: cfg.Executable,
		}))
	case initproto.NetNone:
		env = proxyenv.Merge(env, nil)
	}
	if cfg.Dir != "" {
		if fi, err := os.Stat(cfg.Dir); err != nil {
			return fail(&setupError{msg: "working directory: " + err.Error()})
		} else if !fi.IsDir() {
			return fail(&setupError{msg: "working directory " + cfg.Dir + " is not a directory"})
		}
	}
	path, err := lookPath(args[0], env, cfg.Dir)
	if err != nil {
		return fail(err)
	}
	// CMD must not be able to inspect or ptrace the init.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail(setupErr(err, "making the sandbox init non-dumpable"))
	}
	starttrace.Mark("CMD looked up")
	ll, err := viewLandlock(view)
	if err != nil {
		return fail(err)
	}
	defer ll.Close()
	starttrace.Mark("Landlock ruleset built")
	if err := lockDown(cfg.AllowUnix, gate, nil, ll); err != nil {
		return fail(err)
	}
	starttrace.Mark("locked down")
	pid, err = startCommand(path, args, env, cfg.Dir, cfg.PTY)
	if err != nil {
		return fail(err)
	}
	starttrace.Mark("CMD started")
	return pid, httpPort, socksPort, listeners, nil
}

// setupNetwork brings up the sandbox's loopback (unless the run shares
// the host's network) and, with NetProxy, makes the proxy's listeners
// (HTTP, SOCKS5) and the transparent path cfg asks for, returning the
// listeners' ports and every descriptor to hand to the parent. When the
// transparent path cannot be set up, the run goes on without it (see
// transparentOrOff).
func setupNetwork(cfg initproto.Config) (httpPort, socksPort int, fds []int, err error) {
	if cfg.Network == initproto.NetFull {
		return 0, 0, nil, nil
	}
	if err := LoopbackUp(); err != nil {
		return 0, 0, nil, setupErr(err, "bringing up the sandbox's loopback interface")
	}
	if cfg.Network != initproto.NetProxy {
		return 0, 0, nil, nil
	}
	hfd, httpPort, err := listenLoopback()
	if err != nil {
		return 0, 0, nil, setupErr(err, "creating the proxy's HTTP listener in the sandbox")
	}
	sfd, socksPort, err := listenLoopback()
	if err != nil {
		unix.Close(hfd)
		return 0, 0, nil, setupErr(err, "creating the proxy's SOCKS5 listener in the sandbox")
	}
	fds = []int{hfd, sfd}
	starttrace.Mark("lo up, proxy listeners")
	if cfg.Transparent != nil {
		fds = append(fds, transparentOrOff(cfg.Transparent)...)
	}
	return httpPort, socksPort, fds, nil
}

// startCommand forks and executes CMD from the calling (locked, locked-down)
// thread with stdio as fds 0-2, always in a session of its own: on the pty
// as its controlling terminal when pty, and otherwise with none, so that
// CMD never shares sandgate's session and controlling terminal (whose
// input it could otherwise fake with TIOCSTI: keys for the user's shell
// after the run, or the answer to sandgate's --ask question).
// It uses syscall.ForkExec rather than os.StartProcess: the init reaps with
// wait4 itself, and os would first probe the kernel for pidfd support by
// forking a throwaway child, which costs the start path a whole fork.
func startCommand(path string, args, env []string, dir string, pty bool) (int, error) {
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	if pty {
		attr.Sys.Setctty = true
		attr.Sys.Ctty = 0
	}
	pid, err := syscall.ForkExec(path, args, attr)
	if err != nil {
		return 0, execFailure(args[0], path, dir, err)
	}
	return pid, nil
}

// LoopbackUp sets IFF_UP on lo of the calling thread's network namespace,
// which gives it 127.0.0.1/8 and ::1.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// listenLoopback returns a TCP socket listening on 127.0.0.1 at a free port.
func listenLoopback() (fd, port int, err error) {
	return bindLoopback(unix.AF_INET, unix.SOCK_STREAM, 0)
}

// lockDown locks the calling thread down (confine.LockDown), as the
// identity backend's sandbox user when id is set, with the file system
// view's Landlock ruleset when ll is not nil, and with every connect(2)
// supervised by gate (from a goroutine, so another thread) when gate is
// not nil.
func lockDown(allowUnix bool, gate *unixgate.Gate, id *initproto.Identity, ll *fsview.Landlock) error {
	o := confine.Options{AllowUnixSockets: allowUnix}
	if gate != nil {
		o.SuperviseConnect = func(listener int) {
			go func() {
				if err := gate.Serve(listener); err != nil {
					fmt.Fprintf(os.Stderr, "sandgate: sandbox init: unix socket gate: %v\n", err)
				}
			}()
		}
	}
	if ll != nil {
		o.FileSystem = ll
	}
	if id != nil {
		o.User = &confine.User{UID: id.UID, GID: id.GID, Name: id.User, Group: id.Group}
	}
	if err := confine.LockDown(o); err != nil {
		return asSetupError(err)
	}
	// A uid change cleared the parent-death signal until confine armed it
	// again: the parent may have died in between.
	return checkParent()
}

// openGate opens the allowed unix sockets (nil when there are none).
func openGate(paths []string) (*unixgate.Gate, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	g, err := unixgate.Open(paths)
	if err != nil {
		return nil, &setupError{msg: "sandbox init: " + err.Error()}
	}
	return g, nil
}

// defaultPath is used when the command's environment has no PATH (as execvp).
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// lookPath finds file the way a shell does, in the PATH of env; relative
// entries are taken relative to dir (CMD's working directory). A file that
// exists but is not executable gives exit code 126; nothing found, 127.
func lookPath(file string, env []string, dir string) (string, error) {
	if file == "" {
		return "", &execError{code: 127, msg: "empty command name"}
	}
	if strings.Contains(file, "/") {
		return file, nil // execve decides
	}
	pathEnv, havePath := "", false
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			pathEnv, havePath = v, true
			break
		}
	}
	if !havePath {
		pathEnv = defaultPath
	}
	var notExec string
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		cand := filepath.Join(d, file)
		if !filepath.IsAbs(d) {
			cand = "./" + cand
		}
		check := cand
		if dir != "" && !filepath.IsAbs(cand) {
			check = filepath.Join(dir, cand)
		}
		fi, err := os.Stat(check)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode()&0o111 != 0 && unix.Faccessat(unix.AT_FDCWD, check, unix.X_OK, unix.AT_EACCESS) == nil {
			return cand, nil
		}
		if notExec == "" {
			notExec = cand
		}
	}
	if notExec != "" {
		return "", &execError{code: 126, msg: fmt.Sprintf("%s: permission denied (%s is not executable)", file, notExec)}
	}
	return "", &execError{code: 127, msg: fmt.Sprintf("%s: command not found", file)}
}

// execFailure maps an execve failure to exit code 126 or 127: 127 when the
// file does not exist, 126 for every other failure (not executable, a
// directory, a missing script interpreter, ...).
func execFailure(name, path, dir string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return &execError{code: 126, msg: fmt.Sprintf("%s: %v", name, err)}
	}
	if errno == unix.ENOENT {
		check := path
		if dir != "" && !filepath.IsAbs(path) {
			check = filepath.Join(dir, path)
		}
		if _, serr := os.Stat(check); serr == nil {
			return &execError{code: 126, msg: fmt.Sprintf("%s: bad interpreter or missing loader: %v", name, errno)}
		}
		return &execError{code: 127, msg: fmt.Sprintf("%s: no such file or directory", name)}
	}
	return &execError{code: 126, msg: fmt.Sprintf("%s: %v", name, errno)}
}

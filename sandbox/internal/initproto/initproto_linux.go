//go:build linux

package initproto

import (
	"encoding/json"
	"fmt"
	"os"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Arg0 is argv[0] of a sandgate process re-executed as the sandbox init.
// argv[1] is the JSON Config (or ConfigOnStatus: it follows on the status
// socket); argv[2:] is the command.
const Arg0 = "sandgate:sandbox-init"

// StatusFD is the init's end of the status socket (the parent's
// ExtraFiles[0]). The init keeps it open for its whole life: the parent
// holds the other end, so a hang-up on it means the parent is gone.
const StatusFD = 3

// ForwardedSignals are passed on to the command: by the parent to the init,
// and by the init to CMD.
var ForwardedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGWINCH}

// Network is the command's network, as the init sets it up.
type Network int

const (
	// NetProxy: a private loopback with the proxy's two listeners on it.
	NetProxy Network = iota
	// NetNone: a private loopback only.
	NetNone
	// NetFull: the host's network, environment untouched.
	NetFull
)

// Config is what the parent tells the init, besides the command and its
// environment (the init's own argv and environment).
type Config struct {
	Network   Network `json:"net"`
	AllowUnix bool    `json:"unix,omitempty"`
	// UnixSockets are the unix sockets (absolute paths) CMD may connect
	// to, and no other (the init supervises every connect; see unixgate).
	UnixSockets []string `json:"unixSockets,omitempty"`
	Dir         string   `json:"dir,omitempty"`
	Executable  string   `json:"exe,omitempty"` // sandgate's path, for GIT_SSH_COMMAND
	PTY         bool     `json:"pty,omitempty"` // stdin is a pty slave: give CMD its own session on it
	// Identity, when set, makes this the init of an identity run: CMD runs
	// as that sandbox user in the host's network namespace.
	Identity *Identity `json:"identity,omitempty"`
	// View is the file system view to apply (fsview.Plan.Marshal, a
	// binary encoding); empty: none.
	View []byte `json:"view,omitempty"`

	// The transparent path (issue 11; see transparent_linux.go).
	// Transparent, when set, makes the init of a netns run give the
	// sandbox's network namespace the transparent path and pass its
	// sockets with the proxy's. Replace are files bound read-only over
	// paths of the sandbox's view (the hosts and resolv.conf views; the
	// trust bundles of Spec.TrustPEM), before the file system view is
	// applied (which keeps them).
	Transparent *Transparent  `json:"transparent,omitempty"`
	Replace     []ReplaceFile `json:"replace,omitempty"`
}

// Identity is who CMD runs as in an identity run.
type Identity struct {
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	User  string `json:"user"`  // the sandbox user's name, for messages
	Group string `json:"group"` // the sandbox group's name, for messages
}

// Args returns the init's argv for cfg and the command.
func Args(cfg Config, command []string) ([]string, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding the sandbox init's configuration: %w", err)
	}
	return append([]string{Arg0, string(raw)}, command...), nil
}

// IsInit reports whether args (a process's argv) are those of a sandbox
// init.
func IsInit(args []string) bool {
	return len(args) >= 3 && args[0] == Arg0
}

// ParseArgs decodes an init's argv (see IsInit) into its Config and the
// command.
func ParseArgs(args []string) (Config, []string, error) {
	var cfg Config
	if !IsInit(args) {
		return cfg, nil, fmt.Errorf("not a sandbox init's arguments")
	}
	if err := json.Unmarshal([]byte(args[1]), &cfg); err != nil {
		return cfg, nil, fmt.Errorf("bad configuration: %w", err)
	}
	return cfg, args[2:], nil
}

// Status kinds the init reports on the status socket: first exactly one
// of Started, SetupError and ExecError; after Started, at most one Exited.
const (
	Started    = "started"     // CMD runs; with NetProxy the two listeners ride along
	SetupError = "setup-error" // the sandbox could not be set up; CMD never ran
	ExecError  = "exec-error"  // the sandbox was set up but CMD could not be executed
	// Exited: CMD has ended, with exit status Code (128+N for signal N),
	// and every other process of the sandbox has been killed and reaped;
	// only the init is left, and it exits with Code once the parent has
	// closed its end of the socket. An init that cannot promise that
	// sends no Exited: its exit is then the end.
	Exited = "exited"
)

// Status is the init's report.
type Status struct {
	Kind        string `json:"kind"`
	Msg         string `json:"msg,omitempty"`
	Unavailable bool   `json:"unavailable,omitempty"` // setup refused by the kernel (EPERM and the like)
	Code        int    `json:"code,omitempty"`        // exit code for exec-error (126 or 127) and exited
	HTTPPort    int    `json:"http,omitempty"`
	// TransparentOff, on a Started status of a run that asked for the
	// transparent path, says why the sandbox has none (only the proxy's
	// listeners ride along; CMD is confined as without it).
	TransparentOff string `json:"transparent_off,omitempty"`
	SOCKSPort      int    `json:"socks,omitempty"`
}

// MaxMsg bounds Status.Msg; see Send.
const MaxMsg = 4 << 10

// Send writes st (with fds attached, if any) as one datagram and returns
// the system call's own error (the caller says what failed). A message
// longer than MaxMsg bytes is cut (at a character boundary) so the datagram
// always fits Recv's buffer, even after JSON escaping (at most 6 bytes per
// input byte).
func Send(fd int, st Status, fds ...int) error {
	if len(st.Msg) > MaxMsg {
		cut := MaxMsg
		for cut > 0 && !utf8.RuneStart(st.Msg[cut]) {
			cut--
		}
		st.Msg = st.Msg[:cut] + "…"
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(fd, b, oob, nil, 0)
}

// Recv reads the init's report. ok is false when the init closed the
// socket without reporting (it died before getting that far).
func Recv(f *os.File) (st Status, files []*os.File, ok bool, err error) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(MaxFiles*4))
	var n, oobn int
	rc, err := f.SyscallConn()
	if err != nil {
		return st, nil, false, fmt.Errorf("reading the sandbox init's status: %w", err)
	}
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return st, nil, false, fmt.Errorf("reading the sandbox init's status: %w", err)
	}
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			return st, nil, false, fmt.Errorf("parsing the sandbox init's status: %w", perr)
		}
		for _, m := range msgs {
			fds, perr := unix.ParseUnixRights(&m)
			if perr != nil {
				continue
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "sandbox-listener"))
			}
		}
	}
	if n == 0 {
		CloseAll(files)
		return st, nil, false, nil
	}
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		CloseAll(files)
		return st, nil, false, fmt.Errorf("decoding the sandbox init's status: %w", err)
	}
	return st, files, true, nil
}

// CloseAll closes every file of files.
func CloseAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

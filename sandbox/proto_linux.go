//go:build linux

package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// initArg0 is argv[0] of a sandgate process re-executed as the sandbox init.
// argv[1] is the JSON initConfig; argv[2:] is the command.
const initArg0 = "sandgate:sandbox-init"

// statusFD is the init's end of the status socket (the parent's ExtraFiles[0]).
const statusFD = 3

// initConfig is what the parent tells the init, besides the command and its
// environment (the init's own argv and environment).
type initConfig struct {
	Network    Network `json:"net"`
	AllowUnix  bool    `json:"unix,omitempty"`
	Dir        string  `json:"dir,omitempty"`
	Executable string  `json:"exe,omitempty"` // sandgate's path, for GIT_SSH_COMMAND
	PTY        bool    `json:"pty,omitempty"` // stdin is a pty slave: give CMD its own session on it
	// Identity, when set, makes this the init of an identity run: CMD runs
	// as that sandbox user in the host's network namespace.
	Identity *identityInit `json:"identity,omitempty"`
}

// Status kinds the init reports, exactly once, on the status socket.
const (
	statusStarted    = "started"     // CMD runs; with NetworkProxy the two listeners ride along
	statusSetupError = "setup-error" // the sandbox could not be set up; CMD never ran
	statusExecError  = "exec-error"  // the sandbox was set up but CMD could not be executed
)

// initStatus is the init's report.
type initStatus struct {
	Kind        string `json:"kind"`
	Msg         string `json:"msg,omitempty"`
	Unavailable bool   `json:"unavailable,omitempty"` // setup refused by the kernel (EPERM and the like)
	Code        int    `json:"code,omitempty"`        // exit code for exec-error (126 or 127)
	HTTPPort    int    `json:"http,omitempty"`
	SOCKSPort   int    `json:"socks,omitempty"`
}

// sendStatus writes st (with fds attached, if any) as one datagram.
// A message longer than maxStatusMsg bytes is cut (at a character boundary)
// so the datagram always fits recvStatus's buffer, even after JSON escaping
// (at most 6 bytes per input byte).
func sendStatus(fd int, st initStatus, fds ...int) error {
	if len(st.Msg) > maxStatusMsg {
		cut := maxStatusMsg
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

// maxStatusMsg bounds initStatus.Msg; see sendStatus.
const maxStatusMsg = 4 << 10

// recvStatus reads the init's report. ok is false when the init closed the
// socket without reporting (it died before getting that far).
func recvStatus(f *os.File) (st initStatus, files []*os.File, ok bool, err error) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var n, oobn int
	rc, err := f.SyscallConn()
	if err != nil {
		return st, nil, false, err
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
		closeAll(files)
		return st, nil, false, nil
	}
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		closeAll(files)
		return st, nil, false, fmt.Errorf("decoding the sandbox init's status: %w", err)
	}
	return st, files, true, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

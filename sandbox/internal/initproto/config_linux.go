//go:build linux

package initproto

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The configuration over the status socket. The parent can start the init
// before the configuration is ready (planning the file system view and
// the transparent path takes about as long as the init's own start-up),
// and then send it as the first message on the status socket: the init's
// argv is then [Arg0, ConfigOnStatus, command...] (DeferredArgs), and the
// init reads the configuration with ReadConfig before anything else. The
// status socket is private to the two (the init marks it close-on-exec
// before CMD exists), so the configuration is as out of CMD's reach as
// argv is.

// ConfigOnStatus, as argv[1] of the init, says that the configuration
// comes over the status socket (SendConfig) rather than in argv.
const ConfigOnStatus = "@status"

// MaxConfig bounds the configuration the init accepts over the status
// socket (argv limits one argument to 128 KiB).
const MaxConfig = 1 << 20

// ErrNoConfig is ReadConfig's error when the parent closed the status
// socket without sending the configuration (it is gone).
var ErrNoConfig = errors.New("the parent closed the status socket before sending the configuration")

// DeferredArgs returns the init's argv for command, its configuration to
// follow over the status socket.
func DeferredArgs(command []string) []string {
	return append([]string{Arg0, ConfigOnStatus}, command...)
}

// SendConfig sends cfg on the parent's end of the status socket, as one
// message in the compact binary encoding of encode_linux.go.
func SendConfig(f *os.File, cfg Config) error {
	raw, err := encodeConfig(&cfg)
	if err != nil {
		return fmt.Errorf("encoding the sandbox init's configuration: %w", err)
	}
	if len(raw) > MaxConfig {
		return fmt.Errorf("the sandbox init's configuration is %d bytes, more than %d", len(raw), MaxConfig)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("sending the sandbox init's configuration: %w", err)
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), raw, nil, nil, unix.MSG_NOSIGNAL)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("sending the sandbox init's configuration: %w", err)
	}
	return nil
}

// ReadConfig returns the init's configuration and command from its argv,
// reading the configuration from the status socket fd (blocking) when
// argv says it comes there.
func ReadConfig(args []string, fd int) (Config, []string, error) {
	if !IsInit(args) || args[1] != ConfigOnStatus {
		return ParseArgs(args)
	}
	raw, err := recvConfig(fd)
	if err != nil {
		return Config{}, nil, err
	}
	cfg, err := DecodeConfig(raw)
	if err != nil {
		return Config{}, nil, err
	}
	return cfg, args[2:], nil
}

// recvConfig receives one message of at most MaxConfig bytes from fd.
func recvConfig(fd int) ([]byte, error) {
	// The message's length first (MSG_TRUNC: the whole length is returned
	// although nothing is copied), then the message.
	n, err := recvRetry(fd, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration from the status socket: %w", err)
	}
	if n == 0 {
		return nil, ErrNoConfig
	}
	if n > MaxConfig {
		return nil, fmt.Errorf("the configuration on the status socket is %d bytes, more than %d", n, MaxConfig)
	}
	buf := make([]byte, n)
	if n, err = recvRetry(fd, buf, 0); err != nil {
		return nil, fmt.Errorf("reading the configuration from the status socket: %w", err)
	}
	return buf[:n], nil
}

// recvRetry is recvfrom(2) on fd, retried when a signal interrupts it.
func recvRetry(fd int, buf []byte, flags int) (int, error) {
	for {
		n, _, err := unix.Recvfrom(fd, buf, flags)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// DecodeConfig decodes a configuration as SendConfig encodes it (see
// encode_linux.go); it refuses a malformed one, or one over MaxConfig,
// with an error.
func DecodeConfig(raw []byte) (Config, error) { return decodeConfig(raw) }

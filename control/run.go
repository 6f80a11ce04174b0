package control

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrUnsupported is the answer of the socket parts on systems where
// sandgate cannot check a unix socket peer's uid yet.
var ErrUnsupported = errors.New("the control socket (sandgate run --control, sandgate ctl) is supported on Linux only")

// ErrRunInUse is wrapped by Listen's error for a run id whose socket a
// running sandbox answers on.
var ErrRunInUse = errors.New("is in use")

// MaxRunID bounds the length of a run id, so that the socket's path stays
// well inside the kernel's limit for unix socket addresses.
const MaxRunID = 40

// sockSuffix ends the name of every control socket in the directory.
const sockSuffix = ".sock"

// NewRunID returns a fresh random run id: 12 lower-case hex digits.
func NewRunID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a run id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// CheckRunID checks a run id given by a user (`sandgate run --control=ID`,
// `sandgate ctl ID ...`): 1 to MaxRunID letters, digits, '.', '_' or '-',
// not starting with '.' or '-'.
func CheckRunID(id string) error {
	if id == "" || len(id) > MaxRunID {
		return fmt.Errorf("run id %q: want 1 to %d characters", truncate(id, MaxRunID+5), MaxRunID)
	}
	if id[0] == '.' || id[0] == '-' {
		return fmt.Errorf("run id %q: must not start with %q", id, id[0])
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("run id %q: only letters, digits, '.', '_' and '-' are allowed", id)
		}
	}
	return nil
}

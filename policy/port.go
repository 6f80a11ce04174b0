package policy

import (
	"fmt"
	"strconv"
)

// ParsePort parses a TCP or UDP port the way every part of sandgate reads
// one (policy entries, proxy requests, `sandgate check` targets, setup port
// lists, proxy URLs in the environment): one or more ASCII decimal digits,
// with no sign and no spaces, whose value is 1 to 65535. Leading zeros are
// allowed ("0443" is 443). Any other text gives a *PortError.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, &PortError{Text: s}
	}
	return uint16(n), nil
}

// PortError is the error of ParsePort: Text is not a port. Its message is
// `invalid port "TEXT"`; callers put their own context around it.
type PortError struct {
	Text string // the text that was not a port, as given
}

// Error says which text is not a port.
func (e *PortError) Error() string { return fmt.Sprintf("invalid port %q", e.Text) }

package policy

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/net/idna"
)

// ErrNumericName is wrapped by the errors of NormalizeName, ParseTarget and
// ParseEntry when a name looks like a numeric IPv4 address that some resolver
// or URL parser could read as one ("2130706433", "0x7f.1", "127.1",
// "0177.0.0.1"). Such names are never resolved and never dialled.
var ErrNumericName = errors.New("name looks like a numeric IPv4 address")

// maxNameInput bounds the raw input NormalizeName accepts before doing any
// Unicode work; a valid name is at most 253 ASCII bytes, and even a fully
// Unicode name cannot exceed this many bytes of UTF-8.
const maxNameInput = 1024

// idnaProfile is the lookup profile used for names. It follows UTS #46
// non-transitional processing with the Bidi and ContextJ rules. Two checks of
// the stock lookup profile are left to asciiLabelsOK instead: STD3 (so that
// '_' is allowed, as Go's resolver allows it) and the "--" in positions 3–4
// check (real hosts such as "r3---sn-x.googlevideo.com" use it). It is
// made on first use.
var idnaProfile = sync.OnceValue(func() *idna.Profile {
	return idna.New(
		idna.MapForLookup(),
		idna.Transitional(false),
		idna.BidiRule(),
		idna.CheckJoiners(true),
		idna.CheckHyphens(false),
		idna.StrictDomainName(false),
		idna.VerifyDNSLength(false),
	)
})

// NormalizeName lower-cases, strips one trailing dot, converts IDNA to
// punycode and refuses invalid names; errors name the input.
//
// The result contains only the ASCII bytes a-z, 0-9, '-', '_' and '.', has
// 1–63 bytes per label and at most 253 bytes in all, has no label that starts
// or ends with '-', and does not end in a numeric label (see ErrNumericName).
// Empty labels, '%' (zone ids), spaces, control characters and every other
// byte are refused. NormalizeName is idempotent: a name it returns normalises
// to itself.
func NormalizeName(s string) (string, error) {
	n, err := normalizeName(s)
	if err != nil {
		return "", fmt.Errorf("invalid host name %q: %w", s, err)
	}
	return n, nil
}

// normalizeName is NormalizeName without the input named in the error.
func normalizeName(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty name")
	}
	if len(s) > maxNameInput {
		return "", fmt.Errorf("name is %d bytes long, more than %d", len(s), maxNameInput)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("control character %q", c)
		case c == ' ':
			return "", errors.New("space in name")
		case c == '%':
			return "", errors.New("'%' in name (zone ids and percent-encoding are not allowed)")
		case c == '*':
			return "", errors.New("'*' in name")
		}
	}
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", errors.New("empty name")
	}
	out, err := toASCII(s)
	if err != nil {
		return "", err
	}
	// Normalising the result again must change nothing; if the IDNA mapping
	// is not stable for this input, refuse it rather than match on a name
	// that a second normalisation would spell differently.
	again, err := toASCII(out)
	if err != nil || again != out {
		return "", errors.New("name does not normalise stably")
	}
	if isNumericName(out) {
		return "", ErrNumericName
	}
	return out, nil
}

// toASCII maps s through the IDNA lookup profile and checks the ASCII result.
func toASCII(s string) (string, error) {
	out, err := idnaProfile().ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("not a valid internationalised name: %w", err)
	}
	// The profile maps upper case to lower case already; this is a guard.
	out = strings.ToLower(out)
	if err := asciiLabelsOK(out); err != nil {
		return "", err
	}
	return out, nil
}

// asciiLabelsOK checks the syntax of an ASCII name: labels of 1–63 bytes of
// a-z, 0-9, '-' and '_', not starting or ending with '-', 253 bytes in all.
func asciiLabelsOK(s string) error {
	if len(s) > 253 {
		return fmt.Errorf("name is %d bytes long, more than 253", len(s))
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q is %d bytes long, more than 63", label, len(label))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a host name", c)
			}
		}
	}
	return nil
}

// isNumericName reports whether the last label of a normalised name could be
// read as a number by an IPv4 parser (the WHATWG URL "ends in a number" rule):
// all decimal digits, or "0x" followed by zero or more hex digits. Such a name
// could be dialled as an address by inet_aton-style parsers.
func isNumericName(s string) bool {
	last := s[strings.LastIndexByte(s, '.')+1:]
	if last == "" {
		return false
	}
	if allDigits(last) {
		return true
	}
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	return false
}

// allDigits reports whether s is non-empty and all ASCII decimal digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

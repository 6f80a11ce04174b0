package secrets

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// knownPrefixes are the fixed beginnings of common token formats, kept in
// a placeholder so that tools that check a token's shape still accept it.
var knownPrefixes = sortedLongestFirst([]string{
	"github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", // GitHub
	"glpat-", "gldt-", // GitLab
	"sk-proj-", "sk-ant-api03-", "sk-ant-", "sk-", // OpenAI, Anthropic
	"sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_", // Stripe
	"xoxb-", "xoxp-", "xoxa-", "xoxs-", "xapp-", // Slack
	"AKIA", "ASIA", // AWS access key ids
	"npm_", "pypi-", "hf_", "dop_v1_", "glc_", "shpat_", "AIza", "SG.",
})

func sortedLongestFirst(s []string) []string {
	sort.SliceStable(s, func(i, j int) bool { return len(s[i]) > len(s[j]) })
	return s
}

// The alphabets a placeholder's characters are drawn from.
const (
	digits   = "0123456789"
	lower    = "abcdefghijklmnopqrstuvwxyz"
	upper    = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	hexLower = "0123456789abcdef"
	hexUpper = "0123456789ABCDEF"
)

// WantBits is the randomness a placeholder should have; a shorter value
// gives less (Set.Notes says so), and one below MinBits is refused.
const (
	WantBits = 128
	MinBits  = 48
)

// prefixOf returns the known prefix value starts with, "" when none (or
// when nothing would follow it).
func prefixOf(value string) string {
	for _, p := range knownPrefixes {
		if len(value) > len(p) && strings.HasPrefix(value, p) {
			return p
		}
	}
	return ""
}

// shape describes how a placeholder for value is made: its known prefix is
// kept, every character other than a letter or digit is kept at its place
// (the separators of "xoxb-1-2-abc", a JWT's dots), and each run of
// letters and digits between them becomes random characters of the run's
// own alphabet (see runAlphabet).
type shape struct {
	prefix string
	runs   []run
}

// run is one stretch of the value after the prefix: kept as is (sep) or
// replaced by random characters of alphabet.
type run struct {
	text     string
	alphabet string // "" for a separator
}

func isAlnum(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// shapeOf splits value into its prefix and runs.
func shapeOf(value string) shape {
	sh := shape{prefix: prefixOf(value)}
	rest := value[len(sh.prefix):]
	for len(rest) > 0 {
		alnum := isAlnum(rest[0])
		n := 1
		for n < len(rest) && isAlnum(rest[n]) == alnum {
			n++
		}
		r := run{text: rest[:n]}
		if alnum {
			r.alphabet = runAlphabet(r.text)
		}
		sh.runs = append(sh.runs, r)
		rest = rest[n:]
	}
	return sh
}

// runAlphabet is the alphabet of a run of letters and digits: hexadecimal
// when it mixes digits with only a–f (or only A–F), else the union of the
// classes (digits, lower case, upper case) it contains.
func runAlphabet(s string) string {
	var hasDigit, hasLower, hasUpper, lowHex, upHex = false, false, false, true, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			hasDigit = true
		case 'a' <= c && c <= 'z':
			hasLower = true
			lowHex = lowHex && c <= 'f'
		default:
			hasUpper = true
			upHex = upHex && c <= 'F'
		}
	}
	switch {
	case hasDigit && hasLower && !hasUpper && lowHex:
		return hexLower
	case hasDigit && hasUpper && !hasLower && upHex:
		return hexUpper
	}
	var a string
	if hasDigit {
		a += digits
	}
	if hasLower {
		a += lower
	}
	if hasUpper {
		a += upper
	}
	return a
}

// bits is the randomness of a placeholder of this shape.
func (sh shape) bits() float64 {
	var b float64
	for _, r := range sh.runs {
		if r.alphabet != "" {
			b += float64(len(r.text)) * math.Log2(float64(len(r.alphabet)))
		}
	}
	return b
}

// generate makes one placeholder of the shape from rnd.
func (sh shape) generate(rnd io.Reader) (string, error) {
	var b strings.Builder
	b.WriteString(sh.prefix)
	for _, r := range sh.runs {
		if r.alphabet == "" {
			b.WriteString(r.text)
			continue
		}
		for range len(r.text) {
			c, err := pick(rnd, r.alphabet)
			if err != nil {
				return "", err
			}
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// pick draws one character of alphabet uniformly from rnd (rejecting the
// bytes that would bias it).
func pick(rnd io.Reader, alphabet string) (byte, error) {
	n := len(alphabet)
	limit := 256 - 256%n
	var buf [1]byte
	for {
		if _, err := io.ReadFull(rnd, buf[:]); err != nil {
			return 0, fmt.Errorf("reading randomness for a placeholder: %w", err)
		}
		if int(buf[0]) < limit {
			return alphabet[int(buf[0])%n], nil
		}
	}
}

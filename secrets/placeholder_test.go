package secrets

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// testRand is a deterministic random source for tests.
func testRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

func TestPlaceholderShape(t *testing.T) {
	tests := []struct {
		name     string
		value    string
		prefix   string
		alphabet string // every randomised character is in it ("" to skip)
		minBits  float64
		weak     bool // fewer than WantBits
	}{
		{"classic GitHub", "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5", "ghp_", digits + lower + upper, 200, false},
		{"fine-grained GitHub", "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijkl", "github_pat_", "", 300, false},
		{"OpenAI", "sk-proj-" + strings.Repeat("Ab1", 16), "sk-proj-", digits + lower + upper, 250, false},
		{"Slack bot", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-", "", 200, false},
		{"AWS key id", "AKIAIOSFODNN7EXAMPLE", "AKIA", digits + upper, 80, true},
		{"hex", "0123456789abcdef0123456789abcdef01234567", "", hexLower, 160, false},
		{"upper hex", "0123456789ABCDEF0123456789ABCDEF", "", hexUpper, 128, false},
		{"lower letters only", "abcdefabcdefabcdefabcdefabcdefab", "", lower, 150, false},
		{"base64 with padding", "QWxhZGRpbjpvcGVuIHNlc2FtZQ+/x==", "", "", 128, false},
		{"JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "", "", 400, false},
		{"digits", "12345678901234567890", "", digits, 60, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := shapeOf(tt.value)
			if sh.prefix != tt.prefix {
				t.Errorf("prefix %q, want %q", sh.prefix, tt.prefix)
			}
			if b := sh.bits(); b < tt.minBits || (b < WantBits) != tt.weak {
				t.Errorf("bits %.1f, want at least %.0f, weak %v", b, tt.minBits, tt.weak)
			}
			p, err := sh.generate(testRand(1))
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != len(tt.value) {
				t.Fatalf("placeholder %q has length %d, value %d", p, len(p), len(tt.value))
			}
			if p == tt.value || !strings.HasPrefix(p, tt.prefix) {
				t.Errorf("placeholder %q: equal to the value or prefix %q lost", p, tt.prefix)
			}
			for i := len(tt.prefix); i < len(p); i++ {
				v, c := tt.value[i], p[i]
				if !isAlnum(v) {
					if c != v {
						t.Errorf("separator %q at %d became %q", v, i, c)
					}
					continue
				}
				if !isAlnum(c) {
					t.Errorf("letter/digit at %d became %q", i, c)
				}
				if tt.alphabet != "" && !strings.ContainsRune(tt.alphabet, rune(c)) {
					t.Errorf("character %q at %d is not in the alphabet %q", c, i, tt.alphabet)
				}
			}
		})
	}
}

func TestRunAlphabet(t *testing.T) {
	tests := []struct{ run, want string }{
		{"0123", digits},
		{"abc", lower},
		{"ABC", upper},
		{"a1f9", hexLower},
		{"A1F9", hexUpper},
		{"a1g9", digits + lower},
		{"aB", lower + upper},
		{"aB1", digits + lower + upper},
		{"a1F", digits + lower + upper},
	}
	for _, tt := range tests {
		if got := runAlphabet(tt.run); got != tt.want {
			t.Errorf("runAlphabet(%q) = %q, want %q", tt.run, got, tt.want)
		}
	}
}

func TestPickUniform(t *testing.T) {
	// 256 is not a multiple of 3: byte 255 would bias the draw towards
	// 'a'; it is rejected and the next byte is used.
	c, err := pick(bytes.NewReader([]byte{255, 4}), "abc")
	if err != nil || c != 'b' {
		t.Errorf("pick = %q, %v; want 'b' (the biased byte skipped)", c, err)
	}
	if _, err := pick(bytes.NewReader(nil), "abc"); err == nil {
		t.Error("an exhausted random source gave no error")
	}
}

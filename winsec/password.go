package winsec

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// PasswordLength is the length of the sandbox users' generated passwords.
const PasswordLength = 32

// Password character classes. Every generated password has at least one of
// each, so it passes any local complexity policy; the symbols avoid quotes,
// spaces and characters that some tools treat specially.
const (
	pwUpper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	pwLower  = "abcdefghijkmnopqrstuvwxyz"
	pwDigit  = "23456789"
	pwSymbol = "#%+-.:=@_~"
	pwAll    = pwUpper + pwLower + pwDigit + pwSymbol
)

// NewPassword returns a random password of PasswordLength characters drawn
// uniformly (by rejection sampling) from r, which should be crypto/rand's
// Reader, with at least one upper-case letter, lower-case letter, digit and
// symbol. A draw that lacks a class is thrown away and redrawn.
func NewPassword(r io.Reader) (string, error) {
	for attempt := 0; attempt < 64; attempt++ {
		var b strings.Builder
		for b.Len() < PasswordLength {
			c, err := uniformIndex(r, len(pwAll))
			if err != nil {
				return "", fmt.Errorf("generating a password: %w", err)
			}
			b.WriteByte(pwAll[c])
		}
		pw := b.String()
		if strings.ContainsAny(pw, pwUpper) && strings.ContainsAny(pw, pwLower) &&
			strings.ContainsAny(pw, pwDigit) && strings.ContainsAny(pw, pwSymbol) {
			return pw, nil
		}
	}
	return "", errors.New("generating a password: the random source keeps producing passwords without every character class")
}

// uniformIndex returns a uniformly distributed index below n (n <= 256),
// rejecting bytes that would bias the result.
func uniformIndex(r io.Reader, n int) (int, error) {
	limit := 256 - 256%n
	var buf [1]byte
	for i := 0; i < 1024; i++ {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return 0, err
		}
		if int(buf[0]) < limit {
			return int(buf[0]) % n, nil
		}
	}
	return 0, errors.New("random source produced only rejected bytes")
}

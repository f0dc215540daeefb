package otp

import (
	"crypto/rand"
	"fmt"
	"io"
)

// Code lengths allowed by SECURITY.md rule 1 (NIST SP 800-63B 3.1.3.2).
const (
	MinCodeLength = 6
	MaxCodeLength = 10
)

// NewCode returns a code of n decimal digits read from r, which must be a
// cryptographically secure source (crypto/rand.Reader outside tests). Each
// digit is uniform: bytes of 250 and above are rejected, so there is no
// modulo bias towards low digits.
func NewCode(r io.Reader, n int) (string, error) {
	if n < MinCodeLength || n > MaxCodeLength {
		return "", fmt.Errorf("code length %d is outside %d-%d", n, MinCodeLength, MaxCodeLength)
	}
	if r == nil {
		r = rand.Reader
	}
	out := make([]byte, 0, n)
	var buf [16]byte
	for len(out) < n {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		for _, b := range buf {
			if b >= 250 {
				continue
			}
			out = append(out, '0'+b%10)
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}

// NormalizeCode strips the spaces and dashes people type or paste between
// digit groups and reports whether what remains is exactly n digits.
func NormalizeCode(s string, n int) (string, bool) {
	out := make([]byte, 0, n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if len(out) == n {
				return "", false
			}
			out = append(out, c)
		case c == ' ' || c == '-' || c == '\t':
		default:
			return "", false
		}
	}
	if len(out) != n {
		return "", false
	}
	return string(out), true
}

package otp_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func TestNewCodeLength(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		length int
		ok     bool
	}{
		{"five digits are too few", 5, false},
		{"zero digits are too few", 0, false},
		{"six digits are the minimum", 6, true},
		{"eight digits are allowed", 8, true},
		{"ten digits are the maximum", 10, true},
		{"eleven digits are too many", 11, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, err := otp.NewCode(rand.Reader, tc.length)
			if !tc.ok {
				if err == nil {
					t.Fatalf("got %q, want an error", code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(code) != tc.length || strings.Trim(code, "0123456789") != "" {
				t.Fatalf("got %q, want %d decimal digits", code, tc.length)
			}
		})
	}
}

func TestNewCodeWithoutReaderUsesCryptoRand(t *testing.T) {
	t.Parallel()
	a, err := otp.NewCode(nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	b, err := otp.NewCode(nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two 10-digit codes from crypto/rand are equal: %s", a)
	}
}

func TestNewCodeRejectsBytesFrom250(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		feed  []byte
		want  string
		reads int
	}{
		{
			name: "bytes 250 to 255 are skipped and the rest map to their last digit",
			feed: []byte{250, 251, 252, 253, 254, 255, 0, 9, 249, 10, 123, 45, 200, 7, 99, 100},
			want: "0990350790",
		},
		{
			name: "a block of nothing but rejected bytes is followed by another read",
			feed: append(bytes.Repeat([]byte{255}, 16),
				1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
			want: "1234567890",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, err := otp.NewCode(bytes.NewReader(tc.feed), len(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Fatalf("got %s, want %s", code, tc.want)
			}
		})
	}
}

func TestNewCodeFailsWhenTheReaderFails(t *testing.T) {
	t.Parallel()
	// Ten valid bytes then the end: not enough for one 16-byte read.
	_, err := otp.NewCode(bytes.NewReader([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}), 6)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

// chiSquareBound is far above the 99.9999th percentile of the chi-square
// distribution with 9 degrees of freedom (about 46), so a uniform source
// fails by chance less than once in a million runs, yet far below what a
// modulo bias of 26/256 against 25/256 produces over a million digits
// (about 380).
const chiSquareBound = 60

const sampleDigits = 1_000_000

// digitChiSquare is the chi-square statistic of the digit counts of codes
// against the uniform distribution.
func digitChiSquare(t *testing.T, codes func() string) float64 {
	t.Helper()
	var counts [10]int
	n := 0
	for n < sampleDigits {
		for _, c := range codes() {
			counts[c-'0']++
			n++
		}
	}
	want := float64(n) / 10
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - want
		chi += d * d / want
	}
	return chi
}

// biasedCode is the mistake NewCode avoids: every byte mod 10, so 0-5 come
// up 26 times in 256 and 6-9 only 25.
func biasedCode(r io.Reader, n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

func TestNewCodeDigitsAreUniform(t *testing.T) {
	t.Parallel()
	t.Run("the bias check catches a modulo-biased generator", func(t *testing.T) {
		t.Parallel()
		src := mrand.NewChaCha8([32]byte{1})
		chi := digitChiSquare(t, func() string { return biasedCode(src, 10) })
		t.Logf("chi-square of the biased generator: %.1f", chi)
		if chi <= chiSquareBound {
			t.Fatalf("chi-square %.1f of a biased generator is within the bound %d: the check cannot fail", chi, chiSquareBound)
		}
	})
	t.Run("codes from crypto/rand pass the bias check", func(t *testing.T) {
		t.Parallel()
		chi := digitChiSquare(t, func() string {
			code, err := otp.NewCode(rand.Reader, 10)
			if err != nil {
				t.Fatal(err)
			}
			return code
		})
		t.Logf("chi-square of NewCode: %.1f", chi)
		if chi > chiSquareBound {
			t.Fatalf("chi-square %.1f over %d digits exceeds %d: the digits are not uniform", chi, sampleDigits, chiSquareBound)
		}
	})
}

func TestNormalizeCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		in     string
		length int
		want   string
		ok     bool
	}{
		{"six digits pass as they are", "123456", 6, "123456", true},
		{"a space between groups is dropped", "123 456", 6, "123456", true},
		{"a dash between groups is dropped", "123-456", 6, "123456", true},
		{"surrounding blanks and tabs are dropped", "\t 123456 ", 6, "123456", true},
		{"leading zeros are kept", "000001", 6, "000001", true},
		{"ten digits pass at length ten", "12345 67890", 10, "1234567890", true},
		{"five digits are too few", "12345", 6, "", false},
		{"seven digits are too many", "1234567", 6, "", false},
		{"a letter is refused", "12345a", 6, "", false},
		{"a plus sign is refused", "+123456", 6, "", false},
		{"full-width digits are refused", "１２３４５６", 6, "", false},
		{"a newline is refused", "123456\n", 6, "", false},
		{"an empty input is refused", "", 6, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := otp.NormalizeCode(tc.in, tc.length)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("NormalizeCode(%q, %d) = %q, %v; want %q, %v", tc.in, tc.length, got, ok, tc.want, tc.ok)
			}
		})
	}
}

package pow_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/pow"
)

func TestLeadingZeroBits(t *testing.T) {
	for _, tc := range []struct {
		sum  []byte
		want int
	}{
		{[]byte{0x80}, 0},
		{[]byte{0x01}, 7},
		{[]byte{0x00, 0x40}, 9},
		{[]byte{0x00, 0x00}, 16},
		{[]byte{0x00, 0x00, 0x0f}, 20},
	} {
		if got := pow.LeadingZeroBits(tc.sum); got != tc.want {
			t.Errorf("LeadingZeroBits(%x) = %d, want %d", tc.sum, got, tc.want)
		}
	}
}

func TestSolveThenCheck(t *testing.T) {
	const challenge = "c1.example"
	for _, d := range []int{0, 4, 10, 14} {
		nonce := pow.Solve(context.Background(), challenge, d)
		if !pow.Check(challenge, nonce, d) {
			t.Fatalf("difficulty %d: the nonce Solve found (%q) does not Check", d, nonce)
		}
		sum := pow.Sum(challenge, nonce)
		if pow.LeadingZeroBits(sum[:]) < d {
			t.Fatalf("difficulty %d: nonce %q has too few zero bits", d, nonce)
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	const challenge = "c1.example"
	nonce := pow.Solve(context.Background(), challenge, 12)
	sum := pow.Sum(challenge, nonce)
	got := pow.LeadingZeroBits(sum[:])
	t.Run("a nonce is judged against its own challenge", func(t *testing.T) {
		other := pow.Sum("c1.other", nonce)
		if pow.Check("c1.other", nonce, 12) != (pow.LeadingZeroBits(other[:]) >= 12) {
			t.Error("Check of another challenge does not follow that challenge's hash")
		}
	})
	t.Run("a harder difficulty than the nonce reaches", func(t *testing.T) {
		if pow.Check(challenge, nonce, got+1) {
			t.Errorf("Check passed difficulty %d with %d zero bits", got+1, got)
		}
	})
	t.Run("an empty or overlong nonce", func(t *testing.T) {
		if pow.Check(challenge, "", 0) {
			t.Error("empty nonce passed")
		}
		long := ""
		for len(long) <= pow.MaxNonce {
			long += strconv.Itoa(len(long) % 10)
		}
		if pow.Check(challenge, long, 0) {
			t.Error("overlong nonce passed")
		}
	})
	t.Run("a difficulty out of range", func(t *testing.T) {
		if pow.Check(challenge, nonce, pow.MaxDifficulty+1) || pow.Check(challenge, nonce, -1) {
			t.Error("Check passed a difficulty out of range")
		}
	})
}

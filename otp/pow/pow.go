// Package pow is the proof of work a step-up page's script solves before a
// send when the risk calls for a CAPTCHA: find a nonce such that
// SHA-256(challenge ":" nonce) starts with Difficulty zero bits. Checking
// costs one hash; solving costs about 2^Difficulty. It knows nothing of
// Caddy or of how challenges are issued (otp.Keys.IssueCaptcha).
package pow

import (
	"context"
	"crypto/sha256"
	"math/bits"
	"strconv"
)

// MaxDifficulty is the most leading zero bits a challenge may ask: past
// it a phone's browser would take minutes.
const MaxDifficulty = 28

// MaxNonce is the longest nonce accepted, in bytes: a decimal counter
// never needs more.
const MaxNonce = 32

// Sum is the hash a nonce is judged by.
func Sum(challenge, nonce string) [sha256.Size]byte {
	return sha256.Sum256([]byte(challenge + ":" + nonce))
}

// LeadingZeroBits counts the zero bits at the start of sum.
func LeadingZeroBits(sum []byte) int {
	n := 0
	for _, b := range sum {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// Check reports whether nonce solves challenge at difficulty: a nonce of
// at most MaxNonce bytes whose Sum starts with difficulty zero bits.
func Check(challenge, nonce string, difficulty int) bool {
	if nonce == "" || len(nonce) > MaxNonce || difficulty < 0 || difficulty > MaxDifficulty {
		return false
	}
	sum := Sum(challenge, nonce)
	return LeadingZeroBits(sum[:]) >= difficulty
}

// Solve finds a nonce for challenge at difficulty, counting up in decimal
// from 0 as the page's script does; it stops with "" when ctx ends.
func Solve(ctx context.Context, challenge string, difficulty int) string {
	for i := 0; ; i++ {
		if i%4096 == 0 && ctx.Err() != nil {
			return ""
		}
		nonce := strconv.Itoa(i)
		if Check(challenge, nonce, difficulty) {
			return nonce
		}
	}
}

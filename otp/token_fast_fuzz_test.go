package otp_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// fzSetClock is a clock the fuzz target sets for each input.
type fzSetClock struct{ now time.Time }

func (c *fzSetClock) Now() time.Time { return c.now }

// fzJTI matches the random jti Issue writes, which the seeds fix: every
// fuzzing worker must make the same seeds.
var fzJTI = regexp.MustCompile(`"jti":"[^"]*"`)

// FuzzFastTokenCheckMatchesGolangJWT checks the fast path for unseen HS256
// tokens (token_fast.go, SECURITY.md rule 14) against golang-jwt. The
// fuzzer writes a header and claims, which the target signs with the
// signing key, the retired key or a key the instance does not know (by
// sigKey), or a whole token (raw, when not empty), checked at a time
// around the seeds' issue time (offset, seconds). Whenever the fast path
// decides a token its verdict and claims are golang-jwt's, and Check's
// answer is always that of golang-jwt followed by the per-request checks.
func FuzzFastTokenCheckMatchesGolangJWT(f *testing.F) {
	k1 := fzKeys(f, "fuzz-root-key-one-0123456789abcdef")
	k2 := fzKeys(f, "fuzz-root-key-two-0123456789abcdef")
	k3 := fzKeys(f, "fuzz-root-key-three-0123456789abcd")
	clock := &fzSetClock{now: fzNow}
	cfg := otp.TokenConfig{Issuer: fzIssuer, Audience: fzAudience, TTL: fzTTL, Keys: []*otp.Keys{k1, k2}, Clock: clock}
	tokens, err := otp.NewTokens(cfg)
	if err != nil {
		f.Fatal(err)
	}
	signKeys := [][]byte{k1.TokenKey(), k2.TokenKey(), k3.TokenKey()}

	for _, s := range []struct {
		subject, session string
		authAgo          time.Duration
	}{{"alice", "session-a", 0}, {"bob", "", time.Minute}, {"ünïcode", "s", 1500 * time.Millisecond}} {
		tok := fzIssue(f, tokens, s.subject, s.session, fzNow.Add(-s.authAgo))
		header, payload := segment(f, tok, 0), fzJTI.ReplaceAllString(segment(f, tok, 1), `"jti":"fixed-jti"`)
		for sigKey := range uint8(3) {
			f.Add(header, payload, sigKey, "", s.subject, s.session, int64(0), int64(60))
		}
		f.Add(header, payload, uint8(0), "", s.subject, s.session, int64(15*60), int64(0))
		f.Add(header, payload, uint8(0), "", "mallory", s.session, int64(-1), int64(1))
		f.Add(header, payload, uint8(0), tok, s.subject, s.session, int64(0), int64(0))
	}
	f.Add(`{"alg":"none"}`, `{}`, uint8(0), "", "", "", int64(0), int64(0))

	f.Fuzz(func(t *testing.T, header, payload string, sigKey uint8, raw, subject, session string, offset, maxAgeSec int64) {
		token := raw
		if token == "" {
			token = signHS256(signKeys[int(sigKey)%len(signKeys)], header, payload)
		}
		clock.now = fzNow.Add(time.Duration(offset%(48*3600)) * time.Second)
		maxAge := time.Duration(maxAgeSec%(48*3600)) * time.Second

		v, decided, err := tokens.FastVerdict(token, subject, session)
		wantV, wantErr := tokens.GolangJWTVerdict(token)
		if decided {
			sameVerdict(t, "verdict", v, err, wantV, wantErr)
		}
		// A fresh instance each time: a token cached at another time of
		// the clock would skip not-before and issued-at, as it may (the
		// clock never goes back that far), and golang-jwt would not.
		fresh, err := otp.NewTokens(cfg)
		if err != nil {
			t.Fatal(err)
		}
		v, err = fresh.Check(token, subject, session, maxAge)
		wantV, wantErr = fresh.CheckGolangJWT(token, subject, session, maxAge)
		sameVerdict(t, "Check", v, err, wantV, wantErr)
		if err == nil && !fresh.Cached(token) {
			t.Fatal("a token that passed is not cached")
		}
	})
}

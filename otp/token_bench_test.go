package otp_test

import (
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func BenchmarkTokenCheck(b *testing.B) {
	tokens := newTokens(b, newFakeClock(), mustKeys(b, rootKey))
	tok := issue(b, tokens, "alice", "session-a", t0)
	if _, err := tokens.Check(tok, "alice", "session-a", 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tokens.Check(tok, "alice", "session-a", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenCheckUncached alternates two tokens through a cache of one,
// so every check parses and verifies the signature.
func BenchmarkTokenCheckUncached(b *testing.B) {
	tokens, err := otp.NewTokens(otp.TokenConfig{
		Issuer: issuer, Audience: audience, TTL: tokenTTL, Keys: []*otp.Keys{mustKeys(b, rootKey)},
		CacheSize: 1, Clock: newFakeClock(),
	})
	if err != nil {
		b.Fatal(err)
	}
	pair := [2]string{issue(b, tokens, "alice", "session-a", t0), issue(b, tokens, "alice", "session-a", t0)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := tokens.Check(pair[i%2], "alice", "session-a", 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkTokenCheckForged checks a token in the form Issue writes whose
// signature is not the key's: refused on the HMAC, before any claim is
// read, every time (forgeries are never cached).
func BenchmarkTokenCheckForged(b *testing.B) {
	tokens := newTokens(b, newFakeClock(), mustKeys(b, rootKey))
	good := issue(b, tokens, "alice", "session-a", t0)
	forged := good[:len(good)-5] + flip(good[len(good)-5]) + good[len(good)-4:]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tokens.Check(forged, "alice", "session-a", 0); err == nil {
			b.Fatal("a forgery passed")
		}
	}
}

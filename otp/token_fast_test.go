package otp_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The fast path for unseen HS256 tokens (token_fast.go) must decide every
// token it takes as golang-jwt does, and leave every other one to it
// (SECURITY.md rule 14).

// tokenErrors are the errors Check gives; a verdict is which one, or none.
var tokenErrors = []error{otp.ErrTokenExpired, otp.ErrTokenWrongSubject, otp.ErrTokenWrongSession, otp.ErrTokenTooOld, otp.ErrTokenInvalid}

func verdictOf(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range tokenErrors {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

// sameVerdict fails t unless the fast path's answer (v, err) is
// golang-jwt's (wantV, wantErr): the same error, or the same claims.
func sameVerdict(t testing.TB, what string, v otp.Verified, err error, wantV otp.Verified, wantErr error) {
	t.Helper()
	if verdictOf(err) != verdictOf(wantErr) {
		t.Fatalf("%s: fast path says %v, golang-jwt %v", what, err, wantErr)
	}
	if v != wantV {
		t.Fatalf("%s: fast path gives %+v, golang-jwt %+v", what, v, wantV)
	}
}

// requestCase is a request a token is checked for.
type requestCase struct {
	subject, session string
	maxAge           time.Duration
}

var requestCases = []requestCase{
	{"alice", "session-a", 0}, {"alice", "", 0}, {"bob", "session-a", 0},
	{"alice", "session-b", 0}, {"alice", "session-a", 5 * time.Minute},
}

func TestFastPathDecidesEveryIssuedTokenAsGolangJWT(t *testing.T) {
	t.Parallel()
	k1, k2 := mustKeys(t, rootKey), mustKeys(t, otherKey)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	configs := []struct {
		name             string
		issuer, audience string
		keys             []*otp.Keys
		edKeys           []otp.EdKey
		fast             bool
	}{
		{"HS256, one key", issuer, audience, []*otp.Keys{k1}, nil, true},
		{"HS256, a retired key's tokens", issuer, audience, []*otp.Keys{k1, k2}, nil, true},
		{"HS256, issuer and audience json.Marshal escapes", "https://app.example/_stepup?a=<b>&c=\u2028", "app & <co>", []*otp.Keys{k1}, nil, true},
		{"EdDSA", issuer, audience, []*otp.Keys{k1}, []otp.EdKey{otp.NewEdKey(pub, priv)}, false},
	}
	subjects := []struct {
		name string
		fast bool
	}{{"alice", true}, {"ünïcödé@example.org", true}, {`quote"d`, false}, {"<html>&", false}, {"tab\there", false}}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			tokens, err := otp.NewTokens(otp.TokenConfig{Issuer: cfg.issuer, Audience: cfg.audience, TTL: tokenTTL, Keys: cfg.keys, EdKeys: cfg.edKeys, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			signers := []*otp.Tokens{tokens}
			if len(cfg.keys) > 1 { // tokens of the retired key, from before the rotation
				signers = append(signers, newTokensAt(t, clock, cfg.issuer, cfg.audience, cfg.keys[1]))
			}
			for _, signer := range signers {
				for _, sub := range subjects {
					for _, session := range []string{"session-a", ""} {
						for _, authAgo := range []time.Duration{0, time.Minute, 10 * time.Minute, 1500 * time.Millisecond} {
							tok := issue(t, signer, sub.name, session, clock.Now().Add(-authAgo))
							checkIssuedToken(t, tokens, clock, tok, sub.name, session, cfg.fast && sub.fast)
						}
					}
				}
			}
		})
	}
}

func newTokensAt(t testing.TB, clock otp.Clock, iss, aud string, keys ...*otp.Keys) *otp.Tokens {
	t.Helper()
	tokens, err := otp.NewTokens(otp.TokenConfig{Issuer: iss, Audience: aud, TTL: tokenTTL, Keys: keys, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// checkIssuedToken compares the fast path and golang-jwt on tok, issued
// for subject and session, now and as the clock moves past its expiry
// (then back), and for each request in requestCases.
func checkIssuedToken(t *testing.T, tokens *otp.Tokens, clock *fakeClock, tok, subject, session string, fast bool) {
	t.Helper()
	for _, step := range []time.Duration{0, 14 * time.Minute, time.Minute, -15 * time.Minute} {
		clock.Advance(step)
		wantV, wantErr := tokens.GolangJWTVerdict(tok)
		for _, rc := range requestCases {
			if rc.subject == "alice" {
				rc.subject = subject
			}
			if rc.session == "session-a" {
				rc.session = session
			}
			// The request's strings are only shared, never taken for
			// the token's.
			v, decided, err := tokens.FastVerdict(tok, rc.subject, rc.session)
			if decided != fast {
				t.Fatalf("token for %q: fast path decided it: %v, want %v", subject, decided, fast)
			}
			if decided {
				sameVerdict(t, "token for "+subject, v, err, wantV, wantErr)
			}
			v, err = tokens.Check(tok, rc.subject, rc.session, rc.maxAge)
			wantV, wantErr := tokens.CheckGolangJWT(tok, rc.subject, rc.session, rc.maxAge)
			sameVerdict(t, "Check", v, err, wantV, wantErr)
		}
	}
}

// TestFastPathForgeryAllocatesNothing: forgeries in the issued form are
// refused by the fast path, and without allocating. The race detector's
// instrumentation allocates, so under -race only the refusals are checked;
// scripts/test runs this test once more without -race for the counts.
func TestFastPathForgeryAllocatesNothing(t *testing.T) {
	keys := mustKeys(t, rootKey)
	tokens := newTokens(t, newFakeClock(), keys)
	good := issue(t, tokens, "alice", "session-a", t0)
	other := issue(t, newTokens(t, newFakeClock(), mustKeys(t, otherKey)), "alice", "session-a", t0)
	forgeries := map[string]string{
		"a flipped signature":     good[:len(good)-5] + flip(good[len(good)-5]) + good[len(good)-4:],
		"another key's signature": good[:strings.LastIndex(good, ".")] + other[strings.LastIndex(other, "."):],
		"a truncated signature":   good[:len(good)-1],
	}
	for name, tok := range forgeries {
		if _, decided, err := tokens.FastVerdict(tok, "alice", "session-a"); !decided || !errors.Is(err, otp.ErrTokenInvalid) {
			t.Fatalf("%s: fast path gives %v (decided %v), want it to refuse", name, err, decided)
		}
		if raceEnabled {
			continue
		}
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := tokens.Check(tok, "alice", "session-a", 0); err == nil {
				t.Fatal("a forgery passed")
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: checking it allocates %v times, want none", name, allocs)
		}
	}
}

package otp_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The cache of verified tokens (token.go): bounded, never holding a
// forgery, and no substitute for the per-request checks.

func TestTokensCachedTokensAreCheckedOnEveryRequest(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	tokens := newTokens(t, clock, mustKeys(t, rootKey))
	tok := issue(t, tokens, "alice", "session-a", t0)
	if _, err := tokens.Check(tok, "alice", "session-a", 0); err != nil {
		t.Fatal(err)
	}
	if tokens.CacheLen() != 1 {
		t.Fatalf("cache holds %d tokens, want the one checked", tokens.CacheLen())
	}
	clock.Advance(6 * time.Minute)
	cases := []struct {
		name             string
		subject, session string
		maxAge           time.Duration
		want             error
	}{
		{"the subject is compared", "bob", "session-a", 0, otp.ErrTokenWrongSubject},
		{"the session is compared", "alice", "session-b", 0, otp.ErrTokenWrongSession},
		{"the maximum age is compared", "alice", "session-a", 5 * time.Minute, otp.ErrTokenTooOld},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tokens.Check(tok, tc.subject, tc.session, tc.maxAge); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTokensCacheIsBounded(t *testing.T) {
	t.Parallel()
	const size = 64
	tokens := smallCacheTokens(t, size)
	issued := make([]string, size+100)
	for i := range issued {
		issued[i] = issue(t, tokens, fmt.Sprintf("user-%d", i), "", t0)
	}
	for round := range 2 {
		for i, tok := range issued {
			if _, err := tokens.Check(tok, fmt.Sprintf("user-%d", i), "", 0); err != nil {
				t.Fatalf("round %d token %d: %v", round, i, err)
			}
			if n := tokens.CacheLen(); n > size {
				t.Fatalf("round %d token %d: cache holds %d tokens, more than %d", round, i, n, size)
			}
		}
	}
	if tokens.CacheLen() == 0 {
		t.Fatal("the cache is empty: nothing was remembered")
	}
}

func TestTokensForgeriesAreNeverCached(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, rootKey)
	tokens := newTokens(t, newFakeClock(), keys)
	good := issue(t, tokens, "alice", "session-a", t0)
	if _, err := tokens.Check(good, "alice", "session-a", 0); err != nil {
		t.Fatal(err)
	}
	forgeries := []string{
		tamper(t, good, "bob"),
		unsigned(t, keys.ID, claimsAt(t0)),
		forge(t, jwt.SigningMethodHS512, otp.TokenType, keys.ID, keys.TokenKey(), claimsAt(t0)),
		forge(t, jwt.SigningMethodHS256, otp.TokenType, keys.ID, mustKeys(t, otherKey).TokenKey(), claimsAt(t0)),
	}
	for i, tok := range forgeries {
		for range 3 {
			if _, err := tokens.Check(tok, "bob", "session-a", 0); err == nil {
				t.Fatalf("forgery %d passed", i)
			}
		}
	}
	if n := tokens.CacheLen(); n != 1 {
		t.Fatalf("cache holds %d tokens after forgeries, want only the real one", n)
	}
}

func TestTokensConcurrentChecks(t *testing.T) {
	t.Parallel()
	tokens, err := otp.NewTokens(otp.TokenConfig{
		Issuer: issuer, Audience: audience, TTL: tokenTTL, Keys: []*otp.Keys{mustKeys(t, rootKey)},
		CacheSize: 8, Clock: newFakeClock(),
	})
	if err != nil {
		t.Fatal(err)
	}
	issued := make([]string, 32)
	for i := range issued {
		issued[i] = issue(t, tokens, "alice", "session-a", t0)
	}
	errs := make(chan error, 16*len(issued))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for _, tok := range issued {
				if _, err := tokens.Check(tok, "alice", "session-a", 0); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := tokens.CacheLen(); n > 8 {
		t.Fatalf("cache holds %d tokens, more than 8", n)
	}
}

// A full cache drops one token per insert, an expired one when there is
// one, rather than sweeping itself down to three quarters: it stays full
// of the tokens still in use, and no insert walks the whole map.
func TestTokensFullCacheDropsOneExpiredTokenPerInsert(t *testing.T) {
	t.Parallel()
	const size = 4 // at most evictScan: every entry is looked at
	clock := newFakeClock()
	tokens, err := otp.NewTokens(otp.TokenConfig{
		Issuer: issuer, Audience: audience, TTL: tokenTTL, Keys: []*otp.Keys{mustKeys(t, rootKey)},
		CacheSize: size, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(tok string) {
		t.Helper()
		if _, err := tokens.Check(tok, "alice", "", 0); err != nil {
			t.Fatal(err)
		}
	}
	old := issue(t, tokens, "alice", "", clock.Now())
	check(old)
	clock.Advance(10 * time.Minute)
	live := make([]string, size-1)
	for i := range live {
		live[i] = issue(t, tokens, "alice", "", clock.Now())
		check(live[i])
	}
	clock.Advance(6 * time.Minute) // old has expired, the others have not
	next := issue(t, tokens, "alice", "", clock.Now())
	check(next)
	if n := tokens.CacheLen(); n != size {
		t.Fatalf("cache holds %d tokens after an insert into a full cache, want %d: one dropped, one added", n, size)
	}
	if tokens.Cached(old) {
		t.Fatal("the expired token is still cached: a live one was dropped instead")
	}
	for i, tok := range append(live, next) {
		if !tokens.Cached(tok) {
			t.Fatalf("live token %d was dropped while an expired one was cached", i)
		}
	}
}

func TestTokensFullCacheStaysFull(t *testing.T) {
	t.Parallel()
	const size = 64
	tokens := smallCacheTokens(t, size)
	for i := range size + 10 {
		tok := issue(t, tokens, "alice", "", t0)
		if _, err := tokens.Check(tok, "alice", "", 0); err != nil {
			t.Fatal(err)
		}
		if want := min(i+1, size); tokens.CacheLen() != want {
			t.Fatalf("after %d tokens the cache holds %d, want %d", i+1, tokens.CacheLen(), want)
		}
		if !tokens.Cached(tok) {
			t.Fatalf("token %d, just verified, is not cached", i)
		}
	}
}

// smallCacheTokens are Tokens under rootKey whose cache holds size tokens.
func smallCacheTokens(t *testing.T, size int) *otp.Tokens {
	t.Helper()
	tokens, err := otp.NewTokens(otp.TokenConfig{
		Issuer: issuer, Audience: audience, TTL: tokenTTL, Keys: []*otp.Keys{mustKeys(t, rootKey)},
		CacheSize: size, Clock: newFakeClock(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

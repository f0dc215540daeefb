package otp_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

const (
	issuer   = "https://app.example/_stepup"
	audience = "https://app.example"
	tokenTTL = 15 * time.Minute
)

func newTokens(t testing.TB, clock otp.Clock, keys ...*otp.Keys) *otp.Tokens {
	t.Helper()
	tokens, err := otp.NewTokens(otp.TokenConfig{Issuer: issuer, Audience: audience, TTL: tokenTTL, Keys: keys, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func issue(t testing.TB, tokens *otp.Tokens, subject, session string, authTime time.Time) string {
	t.Helper()
	tok, err := tokens.Issue(subject, session, authTime)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claimsAt are the claims Tokens.Issue would make for alice in session-a at
// now.
func claimsAt(now time.Time) otp.TokenClaims {
	return otp.TokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   "alice",
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(tokenTTL)),
			ID:        "forged",
		},
		SessionHash: "session-a",
		AuthTime:    now.Unix(),
		AMR:         []string{"sms", "otp"},
	}
}

// forge signs claims with method and key under the given header fields; an
// empty typ or kid leaves the field out.
func forge(t testing.TB, method jwt.SigningMethod, typ, kid string, key []byte, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	delete(tok.Header, "typ")
	if typ != "" {
		tok.Header["typ"] = typ
	}
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned is a token with alg "none" and no signature, written by hand.
func unsigned(t testing.TB, kid string, claims any) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"alg": "none", "typ": otp.TokenType, "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(header) + "." + enc(payload) + "."
}

// tamper replaces the payload's subject, keeping header and signature.
func tamper(t testing.TB, token, subject string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = subject
	if payload, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func TestTokensRoundTrip(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, rootKey)
	clock := newFakeClock()
	tokens := newTokens(t, clock, keys)
	authTime := t0.Add(-time.Minute)
	tok := issue(t, tokens, "alice", "session-a", authTime)

	v, err := tokens.Check(tok, "alice", "session-a", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := otp.Verified{Subject: "alice", SessionHash: "session-a", AuthTime: authTime, Expires: t0.Add(tokenTTL)}
	if v.Subject != want.Subject || v.SessionHash != want.SessionHash || !v.AuthTime.Equal(want.AuthTime) || !v.Expires.Equal(want.Expires) {
		t.Fatalf("got %+v, want %+v", v, want)
	}
	// The text the upstream reads, formatted once and the same from the
	// cache of verified tokens.
	wantRFC3339, wantUnix := authTime.UTC().Format(time.RFC3339), strconv.FormatInt(authTime.Unix(), 10)
	for i := range 2 {
		if v.AuthTimeRFC3339 != wantRFC3339 || v.AuthTimeUnix != wantUnix {
			t.Fatalf("check %d: auth time as text %q and %q, want %q and %q", i+1, v.AuthTimeRFC3339, v.AuthTimeUnix, wantRFC3339, wantUnix)
		}
		if v, err = tokens.Check(tok, "alice", "session-a", 0); err != nil {
			t.Fatal(err)
		}
	}

	header, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "HS256" || h["typ"] != otp.TokenType || h["kid"] != keys.ID {
		t.Fatalf("header %v, want HS256, %s and kid %s", h, otp.TokenType, keys.ID)
	}
	if tokens.TTL() != tokenTTL {
		t.Fatalf("TTL %s, want %s", tokens.TTL(), tokenTTL)
	}
}

func TestTokensRefuse(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, rootKey)
	key := keys.TokenKey()
	clock := newFakeClock()
	tokens := newTokens(t, clock, keys)
	good := issue(t, tokens, "alice", "session-a", t0)
	old := issue(t, tokens, "alice", "session-a", t0.Add(-10*time.Minute))
	valid := claimsAt(t0)

	otherIssuer, err := otp.NewTokens(otp.TokenConfig{Issuer: "https://other.example", Audience: audience, TTL: tokenTTL, Keys: []*otp.Keys{keys}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	otherAudience, err := otp.NewTokens(otp.TokenConfig{Issuer: issuer, Audience: "https://other.example", TTL: tokenTTL, Keys: []*otp.Keys{keys}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	without := func(change func(*otp.TokenClaims)) otp.TokenClaims {
		c := claimsAt(t0)
		change(&c)
		return c
	}

	cases := []struct {
		name    string
		token   string
		subject string
		session string
		maxAge  time.Duration
		want    error
	}{
		{"a token for alice passes for alice", good, "alice", "session-a", 0, nil},
		{"a token forged with the right key, alg, typ and kid passes, so the forgeries below fail for their one flaw",
			forge(t, jwt.SigningMethodHS256, otp.TokenType, keys.ID, key, valid), "alice", "session-a", 0, nil},
		{"a token for alice is refused for bob", good, "bob", "session-a", 0, otp.ErrTokenWrongSubject},
		{"a token for one session is refused in another", good, "alice", "session-b", 0, otp.ErrTokenWrongSession},
		{"a token for a session is refused without one", good, "alice", "", 0, otp.ErrTokenWrongSession},
		{"a step-up ten minutes old is refused where five is the maximum age", old, "alice", "session-a", 5 * time.Minute, otp.ErrTokenTooOld},
		{"a step-up ten minutes old passes where ten is the maximum age", old, "alice", "session-a", 10 * time.Minute, nil},
		{"a token with another subject written into its payload is refused", tamper(t, good, "bob"), "bob", "session-a", 0, otp.ErrTokenInvalid},
		{"a token with a flipped signature byte is refused", good[:len(good)-2] + flip(good[len(good)-2]) + good[len(good)-1:], "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token without a signature is refused", good[:strings.LastIndex(good, ".")+1], "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"an alg none token is refused", unsigned(t, keys.ID, valid), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"an HS384 token under the same key is refused", forge(t, jwt.SigningMethodHS384, otp.TokenType, keys.ID, key, valid), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"an HS512 token under the same key is refused", forge(t, jwt.SigningMethodHS512, otp.TokenType, keys.ID, key, valid), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token of type JWT is refused", forge(t, jwt.SigningMethodHS256, "JWT", keys.ID, key, valid), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token without a type is refused", forge(t, jwt.SigningMethodHS256, "", keys.ID, key, valid), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token with an unknown key id is refused", forge(t, jwt.SigningMethodHS256, otp.TokenType, "0123456789abcdef", key, valid), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token without a key id is refused", forge(t, jwt.SigningMethodHS256, otp.TokenType, "", key, valid), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token signed by another key under this key id is refused", forge(t, jwt.SigningMethodHS256, otp.TokenType, keys.ID, mustKeys(t, otherKey).TokenKey(), valid), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token of another issuer is refused", issue(t, otherIssuer, "alice", "session-a", t0), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token for another audience is refused", issue(t, otherAudience, "alice", "session-a", t0), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token without an expiry is refused", forge(t, jwt.SigningMethodHS256, otp.TokenType, keys.ID, key, without(func(c *otp.TokenClaims) { c.ExpiresAt = nil })), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token without an issued-at is refused", forge(t, jwt.SigningMethodHS256, otp.TokenType, keys.ID, key, without(func(c *otp.TokenClaims) { c.IssuedAt = nil })), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token without a subject is refused", forge(t, jwt.SigningMethodHS256, otp.TokenType, keys.ID, key, without(func(c *otp.TokenClaims) { c.Subject = "" })), "", "session-a", 0, otp.ErrTokenInvalid},
		{"a token issued in the future is refused", forge(t, jwt.SigningMethodHS256, otp.TokenType, keys.ID, key, claimsAt(t0.Add(time.Hour))), "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token past its expiry is refused as expired", forge(t, jwt.SigningMethodHS256, otp.TokenType, keys.ID, key, claimsAt(t0.Add(-tokenTTL))), "alice", "session-a", 0, otp.ErrTokenExpired},
		{"an empty token is refused", "", "alice", "session-a", 0, otp.ErrTokenInvalid},
		{"a token that is not a JWT is refused", "not.a.jwt", "alice", "session-a", 0, otp.ErrTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := tokens.Check(tc.token, tc.subject, tc.session, tc.maxAge)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("got %v, want it to pass", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("got %+v, %v; want %v", v, err, tc.want)
			case tc.want != nil && v != (otp.Verified{}):
				t.Fatalf("a refused token came back with %+v", v)
			}
		})
	}
}

// flip changes a base64url character into another valid one.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestTokensExpire(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, rootKey)
	cases := []struct {
		name   string
		after  time.Duration
		cached bool
		want   error
	}{
		{"a cached token passes a second before it expires", tokenTTL - time.Second, true, nil},
		{"a cached token is refused once it expires", tokenTTL, true, otp.ErrTokenExpired},
		{"a token never seen is refused once it expires", tokenTTL, false, otp.ErrTokenExpired},
		{"a token never seen is refused long after it expires", 24 * time.Hour, false, otp.ErrTokenExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			tokens := newTokens(t, clock, keys)
			tok := issue(t, tokens, "alice", "session-a", t0)
			if tc.cached {
				if _, err := tokens.Check(tok, "alice", "session-a", 0); err != nil {
					t.Fatal(err)
				}
			} else {
				tokens = newTokens(t, clock, keys)
			}
			clock.Advance(tc.after)
			if _, err := tokens.Check(tok, "alice", "session-a", 0); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTokensKeyRotation(t *testing.T) {
	t.Parallel()
	oldKeys, newKeys := mustKeys(t, rootKey), mustKeys(t, otherKey)
	clock := newFakeClock()
	before := newTokens(t, clock, oldKeys)
	during := newTokens(t, clock, newKeys, oldKeys)
	after := newTokens(t, clock, newKeys)
	oldToken := issue(t, before, "alice", "session-a", t0)
	newToken := issue(t, during, "alice", "session-a", t0)

	cases := []struct {
		name   string
		tokens *otp.Tokens
		token  string
		ok     bool
	}{
		{"a token signed with the old key passes while both keys are configured", during, oldToken, true},
		{"a token signed with the new key passes while both keys are configured", during, newToken, true},
		{"a token signed with the old key is refused once it is removed", after, oldToken, false},
		{"a token signed with the new key passes once the old one is removed", after, newToken, true},
		{"a token signed with the new key is refused by a server that only knows the old one", before, newToken, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.tokens.Check(tc.token, "alice", "session-a", 0)
			if tc.ok && err != nil {
				t.Fatalf("got %v, want it to pass", err)
			}
			if !tc.ok && !errors.Is(err, otp.ErrTokenInvalid) {
				t.Fatalf("got %v, want ErrTokenInvalid", err)
			}
		})
	}
}

func TestNewTokensRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	keys := []*otp.Keys{mustKeys(t, rootKey)}
	cases := []struct {
		name string
		cfg  otp.TokenConfig
	}{
		{"no key is refused", otp.TokenConfig{Issuer: issuer, Audience: audience, TTL: tokenTTL}},
		{"a zero lifetime is refused", otp.TokenConfig{Issuer: issuer, Audience: audience, Keys: keys}},
		{"a negative lifetime is refused", otp.TokenConfig{Issuer: issuer, Audience: audience, TTL: -time.Minute, Keys: keys}},
		{"no issuer is refused", otp.TokenConfig{Audience: audience, TTL: tokenTTL, Keys: keys}},
		{"no audience is refused", otp.TokenConfig{Issuer: issuer, TTL: tokenTTL, Keys: keys}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tokens, err := otp.NewTokens(tc.cfg); err == nil {
				t.Fatalf("got %v, want an error", tokens)
			}
		})
	}
}

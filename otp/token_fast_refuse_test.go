package otp_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

var b64 = base64.RawURLEncoding

// signHS256 is header.payload, each encoded, with its HS256 signature under
// key: a token of any header and claims, as one holding the key could make.
func signHS256(key []byte, header, payload string) string {
	signing := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(m.Sum(nil))
}

// segment is the decoded i-th segment of token.
func segment(t testing.TB, token string, i int) string {
	t.Helper()
	b, err := b64.DecodeString(strings.Split(token, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withTrailingBits sets the unused low bits of seg's last character, which
// must have some: the same bytes in a second spelling.
func withTrailingBits(t testing.TB, seg string) string {
	t.Helper()
	if len(seg)%4 < 2 {
		t.Fatalf("segment of %d characters has no unused bits", len(seg))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

// TestFastPathRefusesOrDefers: each token below differs from one Issue
// writes in one way. The fast path either decides it or leaves it to
// golang-jwt, as the case says, and Check's answer is golang-jwt's and the
// one the case expects. (Revocation is the handler's, on the Verified's
// AuthTime, which TestFastPathDecidesEveryIssuedTokenAsGolangJWT shows is
// golang-jwt's to the millisecond.)
func TestFastPathRefusesOrDefers(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, rootKey)
	key := keys.TokenKey()
	clock := newFakeClock()
	tokens := newTokens(t, clock, keys)
	good := issue(t, tokens, "alice", "session-a", t0)
	header, payload := segment(t, good, 0), segment(t, good, 1)
	sign := func(h, p string) string { return signHS256(key, h, p) }
	withPayload := func(old, new string) string {
		if !strings.Contains(payload, old) {
			t.Fatalf("payload %s has no %s", payload, old)
		}
		return sign(header, strings.Replace(payload, old, new, 1))
	}
	unix := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }
	now, exp := unix(0), unix(tokenTTL)
	hdr := func(alg, kid, typ string) string {
		return `{"alg":"` + alg + `","kid":"` + kid + `","typ":"` + typ + `"}`
	}
	parts := strings.Split(good, ".")
	sig := parts[2]
	other := issue(t, newTokens(t, clock, mustKeys(t, otherKey)), "alice", "session-a", t0)
	// A jti one character longer gives the payload spare bits if it had none.
	spare := sign(header, payload)
	if len(strings.Split(spare, ".")[1])%4 < 2 {
		spare = withPayload(`","sid"`, `x","sid"`)
	}
	spareParts := strings.Split(spare, ".")
	trailingPayload := signHS256Segments(key, spareParts[0], withTrailingBits(t, spareParts[1]))

	const decides, defers = true, false
	cases := []struct {
		name             string
		token            string
		subject, session string
		maxAge           time.Duration
		fast             bool
		want             error
	}{
		{"the issued token passes", good, "alice", "session-a", 0, decides, nil},
		{"alg HS384 in the header", sign(hdr("HS384", keys.ID, otp.TokenType), payload), "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"alg none without a signature", b64.EncodeToString([]byte(hdr("none", keys.ID, otp.TokenType))) + "." + parts[1] + ".", "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"typ JWT", sign(hdr("HS256", keys.ID, "JWT"), payload), "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"an unknown kid", sign(hdr("HS256", "0123456789abcdef", otp.TokenType), payload), "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"an extra header field (golang-jwt takes it)", sign(strings.TrimSuffix(header, "}")+`,"x":1}`, payload), "alice", "session-a", 0, defers, nil},
		{"the header's fields in another order (golang-jwt takes it)", sign(`{"typ":"`+otp.TokenType+`","alg":"HS256","kid":"`+keys.ID+`"}`, payload), "alice", "session-a", 0, defers, nil},
		{"a padded payload", parts[0] + "." + parts[1] + "=." + sig, "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"a signature with set trailing bits", parts[0] + "." + parts[1] + "." + withTrailingBits(t, sig), "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"a payload with set trailing bits, signed", trailingPayload, "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"a truncated signature", good[:len(good)-1], "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"a signature one character too long", good + "A", "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"no signature", parts[0] + "." + parts[1] + ".", "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"a fourth segment", good + ".x", "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"another key's signature", parts[0] + "." + parts[1] + "." + strings.Split(other, ".")[2], "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"the subject twice (golang-jwt takes the last)", withPayload(`"sub":"alice"`, `"sub":"bob","sub":"alice"`), "alice", "session-a", 0, defers, nil},
		{"an unknown claim (golang-jwt ignores it)", withPayload(`,"amr"`, `,"x":1,"amr"`), "alice", "session-a", 0, defers, nil},
		{"a space in the claims", withPayload(`"sub":"alice"`, `"sub": "alice"`), "alice", "session-a", 0, defers, nil},
		{"an escaped subject", withPayload(`"sub":"alice"`, `"sub":"\u0061lice"`), "alice", "session-a", 0, defers, nil},
		{"an empty subject", withPayload(`"sub":"alice"`, `"sub":""`), "", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"no subject", withPayload(`"sub":"alice",`, ``), "", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"another audience", withPayload(`"aud":["`+audience+`"]`, `"aud":["https://other.example"]`), "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"two audiences, one this one (golang-jwt takes it)", withPayload(`"aud":["`+audience+`"]`, `"aud":["https://other.example","`+audience+`"]`), "alice", "session-a", 0, defers, nil},
		{"another issuer", withPayload(`"iss":"`+issuer+`"`, `"iss":"https://other.example"`), "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"expired and of another issuer: expired first", sign(header, strings.NewReplacer(`"iss":"`+issuer+`"`, `"iss":"https://other.example"`, `"exp":`+exp, `"exp":`+now).Replace(payload)), "alice", "session-a", 0, defers, otp.ErrTokenExpired},
		{"exp now", withPayload(`"exp":`+exp, `"exp":`+now), "alice", "session-a", 0, decides, otp.ErrTokenExpired},
		{"exp a second ahead", withPayload(`"exp":`+exp, `"exp":`+unix(time.Second)), "alice", "session-a", 0, decides, nil},
		{"exp with a fraction (golang-jwt takes it)", withPayload(`"exp":`+exp, `"exp":`+exp+`.0`), "alice", "session-a", 0, defers, nil},
		{"exp with a leading zero", withPayload(`"exp":`+exp, `"exp":0`+exp), "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
		{"exp of 16 digits", withPayload(`"exp":`+exp, `"exp":1000000000000000`), "alice", "session-a", 0, defers, nil},
		{"exp negative", withPayload(`"exp":`+exp, `"exp":-`+exp), "alice", "session-a", 0, defers, otp.ErrTokenExpired},
		{"nbf a second ahead", withPayload(`"nbf":`+now, `"nbf":`+unix(time.Second)), "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"iat a second ahead", withPayload(`"iat":`+now, `"iat":`+unix(time.Second)), "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"auth_time_ms outside auth_time's second", withPayload(`"auth_time":`+now, `"auth_time":`+unix(-time.Second)), "alice", "session-a", 0, decides, otp.ErrTokenInvalid},
		{"no auth_time_ms", withPayload(`,"auth_time_ms":`+now+"000", ``), "alice", "session-a", 0, decides, nil},
		{"another amr (golang-jwt takes it)", withPayload(`"amr":["sms","otp"]`, `"amr":["pwd"]`), "alice", "session-a", 0, defers, nil},
		{"another subject", good, "bob", "session-a", 0, decides, otp.ErrTokenWrongSubject},
		{"another session", good, "alice", "session-b", 0, decides, otp.ErrTokenWrongSession},
		{"older than the route allows", issue(t, tokens, "alice", "session-a", t0.Add(-10*time.Minute)), "alice", "session-a", 5 * time.Minute, decides, otp.ErrTokenTooOld},
		{"a huge token (golang-jwt takes it)", issue(t, tokens, strings.Repeat("a", 2000), "session-a", t0), strings.Repeat("a", 2000), "session-a", 0, defers, nil},
		{"an empty token", "", "alice", "session-a", 0, defers, otp.ErrTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, decided, fastErr := tokens.FastVerdict(tc.token, tc.subject, tc.session)
			if decided != tc.fast {
				t.Fatalf("fast path decided it: %v (%v), want %v", decided, fastErr, tc.fast)
			}
			wantV, wantErr := tokens.CheckGolangJWT(tc.token, tc.subject, tc.session, tc.maxAge)
			v, err := tokens.Check(tc.token, tc.subject, tc.session, tc.maxAge)
			sameVerdict(t, "Check", v, err, wantV, wantErr)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// signHS256Segments signs two segments already encoded.
func signHS256Segments(key []byte, header, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(header + "." + payload))
	return header + "." + payload + "." + b64.EncodeToString(m.Sum(nil))
}

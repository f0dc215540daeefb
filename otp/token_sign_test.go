package otp

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestIssueSignsAsGolangJWT: an HS256 token Issue makes is, byte for
// byte, the one golang-jwt's SignedString makes of the same claims, and
// Check takes it.
func TestIssueSignsAsGolangJWT(t *testing.T) {
	k1, err := DeriveKeys([]byte("token-sign-test-key-one-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := DeriveKeys([]byte("token-sign-test-key-two-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1764000000, 0)
	tokens, err := NewTokens(TokenConfig{Issuer: "https://issuer.example", Audience: "https://aud.example", TTL: time.Hour,
		Keys: []*Keys{k1, k2}, Clock: signTestClock{now}})
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"alice", "bob <b@example.com>", "山田", "\"quoted\"\u2028"} {
		token, err := tokens.Issue(subject, "session-hash", now.Add(-time.Second))
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q: want three parts", token)
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims TokenClaims
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		ref := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		ref.Header["kid"] = k1.ID
		ref.Header["typ"] = TokenType
		want, err := ref.SignedString(k1.token)
		if err != nil {
			t.Fatal(err)
		}
		if token != want {
			t.Fatalf("subject %q:\n got %s\nwant %s", subject, token, want)
		}
		if _, err := tokens.Check(token, subject, "session-hash", 0); err != nil {
			t.Fatalf("subject %q: Check: %v", subject, err)
		}
	}
}

type signTestClock struct{ t time.Time }

func (c signTestClock) Now() time.Time { return c.t }

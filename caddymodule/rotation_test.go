package caddymodule

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestKeyRotationKeepsCookiesValid: a cookie signed with the old key passes
// on a config whose signing_key is new and whose previous_keys holds the
// old one, so rotating logs nobody out; without previous_keys it does not.
func TestKeyRotationKeepsCookiesValid(t *testing.T) {
	t.Parallel()
	const oldKey, newKey = "rotation-old-key-0123456789abcdefghijkl", "rotation-new-key-0123456789abcdefghijkl"
	before := htNew(t, nil, func(h *Handler) { h.SigningKey = oldKey })
	b := before.browser("rot-alice")
	b.stepUp()
	cookie := b.cookie("__Host-stepup")

	serve := func(e *htEnv) int {
		c := e.browser("rot-alice")
		c.setCookie("__Host-stepup", cookie)
		w, _ := c.get("/settings")
		return w.Code
	}
	rotated := htNew(t, before.clock, func(h *Handler) { h.SigningKey, h.PreviousKeys = newKey, []string{oldKey} })
	if code := serve(rotated); code != http.StatusOK {
		t.Fatalf("after rotation with previous_keys the old cookie got %d, want 200", code)
	}
	dropped := htNew(t, before.clock, func(h *Handler) { h.SigningKey = newKey })
	if code := serve(dropped); code != http.StatusSeeOther {
		t.Fatalf("once the old key is dropped its cookie got %d, want a step-up (303)", code)
	}
	fresh := rotated.browser("rot-bob")
	fresh.stepUp()
	if kid := tokenKID(t, fresh.cookie("__Host-stepup")); kid != rotated.h.keys.ID {
		t.Fatalf("new cookies are signed with kid %q, want the new key's %q", kid, rotated.h.keys.ID)
	}
}

// TestEdDSATokensAndJWKS: with signing_key_file the cookie is an EdDSA JWT
// whose kid is published at {prefix}/jwks.json, and the upstream gets the
// token through {http.sms_stepup.token} to verify it itself.
func TestEdDSATokensAndJWKS(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "stepup.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	e := htNew(t, nil, func(h *Handler) { h.SigningKeyFile = keyFile })
	b := e.browser("ed-alice")
	b.stepUp()
	token := b.cookie("__Host-stepup")

	w, body := e.browser("").get("/_stepup/jwks.json")
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string }
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil || w.Code != http.StatusOK || len(set.Keys) != 1 {
		t.Fatalf("jwks: %d %q", w.Code, body)
	}
	k := set.Keys[0]
	x, _ := base64.RawURLEncoding.DecodeString(k.X)
	if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || !ed25519.PublicKey(x).Equal(pub) || k.Kid != tokenKID(t, token) {
		t.Fatalf("jwks key %+v does not describe the signing key", k)
	}
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return ed25519.PublicKey(x), nil }, jwt.WithValidMethods([]string{"EdDSA"}))
	if err != nil || !parsed.Valid {
		t.Fatalf("the upstream could not verify the token with the published key: %v", err)
	}

	// An HS256 token forged with a key an attacker might guess is refused:
	// the algorithm is pinned to EdDSA.
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, parsed.Claims)
	forged.Header["typ"], forged.Header["kid"] = "stepup+jwt", k.Kid
	hs, _ := forged.SignedString(x)
	c := e.browser("ed-alice")
	c.setCookie("__Host-stepup", hs)
	if w, _ := c.get("/settings"); w.Code != http.StatusSeeOther {
		t.Fatalf("an HS256 token signed with the public key got %d", w.Code)
	}
}

func tokenKID(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

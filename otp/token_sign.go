package otp

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// HS256 tokens signed without golang-jwt's signer (issue 17): its header
// is the same for every token of a key, yet was built as a map and
// marshalled on each, and its HMAC made from a fresh hmac.New. The bytes
// are the ones jwt.Token.SignedString gives (TestIssueSignsAsGolangJWT);
// tokens are still parsed and checked by golang-jwt, algorithm pinned.

// hs256Header is the encoded JWT header of an HS256 token of key kid: the
// map golang-jwt marshals (its keys sorted), in unpadded base64url.
func hs256Header(kid string) string {
	h, err := json.Marshal(map[string]any{"alg": "HS256", "kid": kid, "typ": TokenType})
	if err != nil {
		panic(err) // strings only
	}
	return base64.RawURLEncoding.EncodeToString(h)
}

// signHS256 is the signed token of claims under the first key.
func (t *Tokens) signHS256(claims *TokenClaims) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign step-up token: %w", err)
	}
	enc := base64.RawURLEncoding
	signing := make([]byte, 0, len(t.hsHeader)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(32))
	signing = append(signing, t.hsHeader...)
	signing = append(signing, '.')
	signing = enc.AppendEncode(signing, payload)
	k := t.cfg.Keys[0]
	m := k.mac(k.token)
	defer k.macDone(k.token, m)
	m.h.Write(signing)
	signing = append(signing, '.')
	return string(enc.AppendEncode(signing, m.h.Sum(m.sum[:0]))), nil
}

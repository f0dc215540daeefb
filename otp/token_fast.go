package otp

import (
	"crypto/hmac"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// The HS256 fast path for a token not in the cache (issue 17). golang-jwt's
// full parse of a fresh token took about 13 µs and 73 allocations: a map
// for the header, reflection over the claims, a new HMAC per check. This
// path takes only the tokens this instance's Issue writes, byte for byte:
// the header Issue writes for one of the configured HMAC keys (algorithm
// pinned, typ, kid; SECURITY.md rule 14), strict unpadded base64url, a
// 43-character signature, and claims in exactly the shape and order Issue
// marshals them (token_fast_claims.go). The signature is checked, with a
// pooled HMAC, before any claim is read, so a forgery costs no allocation.
// Anything else (an EdDSA deployment, a header or claims in any other
// spelling) is left to golang-jwt, whose verdict on the tokens this path
// takes is the same (token_fast_test.go, FuzzFastTokenCheckMatchesGolangJWT).

// maxFastToken bounds the tokens the fast path reads: its buffers are on
// the stack, and the pooled HMAC keeps a buffer of at most maxMACBuffer
// bytes. Longer tokens (a subject of hundreds of bytes) go to golang-jwt.
const maxFastToken = maxMACBuffer

// strictBase64 is golang-jwt's decoding under jwt.WithStrictDecoding: no
// padding, and no set bits past the last byte, so each value has one
// spelling.
var strictBase64 = base64.RawURLEncoding.Strict()

// The fast path's refusals, each an ErrTokenInvalid, made once.
var (
	errFastSignature = fmt.Errorf("%w: signature is invalid", ErrTokenInvalid)
	errFastNotYet    = fmt.Errorf("%w: token is not valid yet or used before issued", ErrTokenInvalid)
	errFastAuthTime  = fmt.Errorf("%w: auth_time_ms is not within auth_time", ErrTokenInvalid)
)

// fastKey is an HMAC key tokens are verified with and the encoded header
// Issue writes for it.
type fastKey struct {
	header string
	keys   *Keys
}

// fastKeys are the HS256 keys by kid as golang-jwt looks them up (t.byKID:
// of two keys with one id the later wins), with their headers; none in an
// EdDSA deployment, which takes no HS256 token.
func fastKeys(cfg TokenConfig) []fastKey {
	if len(cfg.EdKeys) > 0 {
		return nil
	}
	var out []fastKey
	for _, k := range cfg.Keys {
		h := hs256Header(k.ID)
		replaced := false
		for i := range out {
			if out[i].header == h {
				out[i].keys, replaced = k, true
			}
		}
		if !replaced {
			out = append(out, fastKey{header: h, keys: k})
		}
	}
	return out
}

// verifiedFast decides token by the fast path. decided is false when the
// token is not one the fast path reads: golang-jwt must decide it. token
// holds only base64url characters and dots (verified checks first).
// subject and sessionHash are the request's: a token that names them
// shares their strings rather than copying its own.
func (t *Tokens) verifiedFast(token, subject, sessionHash string) (v Verified, decided bool, err error) {
	if len(token) > maxFastToken {
		return Verified{}, false, nil
	}
	header, rest, _ := strings.Cut(token, ".")
	key := t.fastKey(header)
	if key == nil {
		return Verified{}, false, nil
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return Verified{}, false, nil
	}
	// With this instance's own header, golang-jwt refuses every token
	// whose signature is not this HMAC in strict base64url.
	if !validHS256(key, token[:len(header)+1+len(payload)], sig) {
		return Verified{}, true, errFastSignature
	}
	var buf [maxFastToken]byte
	claims, ok := t.readClaims(payload, buf[:])
	if !ok {
		return Verified{}, false, nil
	}
	v, err = t.fastVerdict(&claims, subject, sessionHash)
	return v, true, err
}

// fastKey is the key whose header is header, or nil.
func (t *Tokens) fastKey(header string) *Keys {
	for i := range t.fast {
		if t.fast[i].header == header {
			return t.fast[i].keys
		}
	}
	return nil
}

// validHS256 reports whether sig is the strict unpadded base64url of the
// HMAC-SHA256 under k's token key of signing, compared in constant time.
func validHS256(k *Keys, signing, sig string) bool {
	if len(sig) != base64EncodedSHA256 {
		return false
	}
	var enc [base64EncodedSHA256]byte
	var got [32]byte
	copy(enc[:], sig)
	if n, err := strictBase64.Decode(got[:], enc[:]); err != nil || n != len(got) {
		return false
	}
	m := k.mac(k.token)
	defer k.macDone(k.token, m)
	return hmac.Equal(m.sum(signing), got[:])
}

// readClaims decodes payload, strict base64url, into buf and reads the
// claims there; false if they are not in the shape Issue writes. (Claims
// and buf are passed by value and returned, not through pointers, so that
// buf can stay on the caller's stack.)
func (t *Tokens) readClaims(payload string, buf []byte) (fastClaims, bool) {
	var enc [maxFastToken]byte
	n := copy(enc[:], payload)
	m, err := strictBase64.Decode(buf, enc[:n])
	if err != nil {
		return fastClaims{}, false
	}
	return t.claims.read(buf[:m])
}

// fastVerdict is what golang-jwt and verified decide on claims whose
// signature is valid: expiry first (golang-jwt reports it over every other
// claim's fault), then not-before and issued-at, then auth_time_ms within
// auth_time. Issuer, audience, subject and the dates' presence the reader
// already required.
func (t *Tokens) fastVerdict(c *fastClaims, subject, sessionHash string) (Verified, error) {
	now := t.cfg.Clock.Now()
	expires := time.Unix(c.exp, 0)
	switch {
	case !now.Before(expires):
		return Verified{}, ErrTokenExpired
	case now.Before(time.Unix(c.nbf, 0)) || now.Before(time.Unix(c.iat, 0)):
		return Verified{}, errFastNotYet
	}
	authTime := time.Unix(c.authTime, 0)
	if c.authTimeMS != 0 {
		if authTime = time.UnixMilli(c.authTimeMS); authTime.Unix() != c.authTime {
			return Verified{}, errFastAuthTime
		}
	}
	return newVerified(shared(c.sub, subject), shared(c.sid, sessionHash), authTime, c.authTime, expires), nil
}

// shared is b as a string: s itself when they are equal, so that a token
// of the request's subject or session copies nothing.
func shared(b []byte, s string) string {
	if string(b) == s {
		return s
	}
	return string(b)
}

package otp

import "time"

// TokenKey exposes the token signing key to the external tests, which forge
// tokens with it to show what Tokens.Check refuses even under the right key.
func (k *Keys) TokenKey() []byte { return k.token }

// Cached reports whether token is in the cache of verified tokens.
func (t *Tokens) Cached(token string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.cache[token]
	return ok
}

// FastVerdict is the fast path's verdict on token (token_fast.go):
// decided is false when it leaves the token to golang-jwt.
func (t *Tokens) FastVerdict(token, subject, sessionHash string) (v Verified, decided bool, err error) {
	if !tokenChars(token) {
		return Verified{}, true, ErrTokenInvalid
	}
	return t.verifiedFast(token, subject, sessionHash)
}

// GolangJWTVerdict is golang-jwt's verdict on token, as verified reaches
// it when the fast path leaves a token.
func (t *Tokens) GolangJWTVerdict(token string) (Verified, error) {
	if !tokenChars(token) {
		return Verified{}, ErrTokenInvalid
	}
	return t.verifiedJWT(token)
}

// CheckGolangJWT is Check with golang-jwt deciding every token and no
// cache: what Check answered before the fast path.
func (t *Tokens) CheckGolangJWT(token, subject, sessionHash string, maxAge time.Duration) (Verified, error) {
	v, err := t.GolangJWTVerdict(token)
	if err != nil {
		return Verified{}, err
	}
	if err := t.checkRequest(&v, subject, sessionHash, maxAge); err != nil {
		return Verified{}, err
	}
	return v, nil
}

// MaxRevocationCache is how many identities' not-befores an instance keeps.
const MaxRevocationCache = maxRevocationCache

// RevocationCacheLen reports how many identities' not-befores are cached.
func (s *Service) RevocationCacheLen() int {
	s.revoked.mu.RLock()
	defer s.revoked.mu.RUnlock()
	return len(s.revoked.m)
}

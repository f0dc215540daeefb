package otp

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

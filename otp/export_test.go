package otp

// TokenKey exposes the token signing key to the external tests, which forge
// tokens with it to show what Tokens.Check refuses even under the right key.
func (k *Keys) TokenKey() []byte { return k.token }

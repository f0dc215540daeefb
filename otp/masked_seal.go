package otp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
)

// A challenge's masked number, and a bound number's, are kept sealed in the
// store (docs/SECURITY.md rule 3). The masked form shows a number's last
// four digits, and the fraud guard's send record, named by the challenge
// id, holds the number's prefix (all but those four) in clear for the
// verification to credit: a dump of Redis joined the two into the whole
// number. Sealed under the identity, the masked form reads only through
// the service.

// sealedMaskedPrefix marks a masked number kept sealed; a value without it
// was stored in clear (by an earlier version) and reads as it is.
const sealedMaskedPrefix = "sealed1."

// SealMasked seals the masked number of subject for the store, in text.
func (k *Keys) SealMasked(subject, masked string) (string, error) {
	if masked == "" {
		return "", nil
	}
	nonce := make([]byte, k.seal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := k.seal.Seal(nonce, nonce, []byte(masked), maskedSealAD(subject))
	return sealedMaskedPrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// OpenMasked reverses SealMasked for the same subject. A value stored in
// clear reads as it is; one that does not open (sealed under a key since
// rotated away, or for another identity) reads as "": no number is shown
// rather than a wrong one.
func (k *Keys) OpenMasked(subject, stored string) string {
	rest, sealed := strings.CutPrefix(stored, sealedMaskedPrefix)
	if !sealed {
		return stored
	}
	masked, err := k.openMasked(subject, rest)
	if err != nil {
		return ""
	}
	return masked
}

func (k *Keys) openMasked(subject, text string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(text)
	n := k.seal.NonceSize()
	if err != nil || len(raw) < n {
		return "", errors.New("not a sealed masked number")
	}
	plain, err := k.seal.Open(nil, raw[:n], raw[n:], maskedSealAD(subject))
	return string(plain), err
}

// maskedSealAD binds a sealed masked number to its identity, and keeps it
// from opening as a sealed full number (phoneSealAD), or the other way.
func maskedSealAD(subject string) []byte { return []byte("masked\x00" + subject) }

// openChallenge is c with its masked number opened; c itself, which may be
// a store's, is not changed.
func (s *Service) openChallenge(c *Challenge) *Challenge {
	if c == nil || !strings.HasPrefix(c.PhoneMasked, sealedMaskedPrefix) {
		return c
	}
	out := *c
	out.PhoneMasked = s.keys.OpenMasked(c.Subject, c.PhoneMasked)
	return &out
}

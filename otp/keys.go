package otp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// MinKeyLength is the shortest signing key accepted, in bytes: an HS256 key
// shorter than the hash output weakens it (RFC 7518 section 3.2).
const MinKeyLength = 32

// Keys holds the secrets derived from one root key. Each purpose gets its own
// key so that a value made for one (a CSRF token, say) can never be replayed
// as another (a code MAC or a token signature).
type Keys struct {
	// ID names the root key in tokens (the JWT kid), so keys can rotate.
	ID string

	token   []byte
	codeMAC []byte
	csrf    []byte
	session []byte
	phone   []byte
	limit   []byte
	receipt cipher.AEAD
	seal    cipher.AEAD
	// lookup and lookupSeal keep phone sources' answers in the store
	// (lookup.go).
	lookup     []byte
	lookupSeal cipher.AEAD
}

// DeriveKeys derives the per-purpose keys from root.
func DeriveKeys(root []byte) (*Keys, error) {
	if len(root) < MinKeyLength {
		return nil, errors.New("signing key must be at least 32 bytes")
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, root)
		m.Write([]byte("caddy-sms-stepup/v1/" + label))
		return m.Sum(nil)
	}
	receipt, err := newGCM(derive("receipt"))
	if err != nil {
		return nil, err
	}
	seal, err := newGCM(derive("phone-seal"))
	if err != nil {
		return nil, err
	}
	lookupSeal, err := newGCM(derive("lookup-seal"))
	if err != nil {
		return nil, err
	}
	return &Keys{
		receipt: receipt,
		seal:    seal,
		limit:   derive("limit"),
		ID:      hex.EncodeToString(derive("kid")[:8]),
		token:   derive("token"),
		codeMAC: derive("code"),
		csrf:    derive("csrf"),
		session: derive("session"),
		phone:   derive("phone"),

		lookup:     derive("lookup"),
		lookupSeal: lookupSeal,
	}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// CodeMAC is what the store keeps instead of a code: HMAC-SHA256 over the
// challenge id and the code, so a stored value is useless for any other
// challenge and a dump of the store reveals no code.
func (k *Keys) CodeMAC(challengeID, code string) []byte {
	m := hmac.New(sha256.New, k.codeMAC)
	m.Write([]byte(challengeID))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// SessionHash binds a token or challenge to the application's session without
// putting the session cookie itself anywhere. An empty session hashes to "".
func (k *Keys) SessionHash(session string) string {
	if session == "" {
		return ""
	}
	return k.short(k.session, session)
}

// PhoneHash identifies a phone number in the store without keeping it in
// clear.
func (k *Keys) PhoneHash(e164 string) string {
	return k.short(k.phone, e164)
}

// LimitKey names what a send limit counts (kind "phone" and an E.164
// number, kind "ip" and an address) without putting the value in the
// store: a keyed hash, so a dump of the store cannot be matched against a
// list of numbers.
func (k *Keys) LimitKey(kind, value string) string {
	m := hmac.New(sha256.New, k.limit)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// CSRFToken returns the token a form must carry: bound to the browser's
// CSRF nonce cookie, the identity and the session.
func (k *Keys) CSRFToken(nonce, identity, sessionHash string) string {
	m := hmac.New(sha256.New, k.csrf)
	for _, s := range [...]string{nonce, identity, sessionHash} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRFToken compares a submitted token in constant time.
func (k *Keys) CheckCSRFToken(token, nonce, identity, sessionHash string) bool {
	if token == "" || nonce == "" {
		return false
	}
	want := k.CSRFToken(nonce, identity, sessionHash)
	return hmac.Equal([]byte(token), []byte(want))
}

func (k *Keys) short(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// SealReceipt makes the token of a delivery-report URL: the identity and
// challenge, encrypted and authenticated, so the report finds its challenge
// without any lookup, nobody can forge one, and the provider learns nothing.
func (k *Keys) SealReceipt(subject, challengeID string) (string, error) {
	nonce := make([]byte, k.receipt.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := k.receipt.Seal(nonce, nonce, []byte(subject+"\x00"+challengeID), []byte("receipt"))
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// OpenReceipt reverses SealReceipt; ok is false for anything it did not make.
func (k *Keys) OpenReceipt(token string) (subject, challengeID string, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < k.receipt.NonceSize() {
		return "", "", false
	}
	plain, err := k.receipt.Open(nil, raw[:k.receipt.NonceSize()], raw[k.receipt.NonceSize():], []byte("receipt"))
	if err != nil {
		return "", "", false
	}
	subject, challengeID, ok = strings.Cut(string(plain), "\x00")
	return subject, challengeID, ok
}

// SealPhone encrypts and authenticates a bound phone number for the store,
// which must be able to give the number back (PhoneHash cannot) without
// holding it in clear. The subject is authenticated with it, so a sealed
// number copied onto another identity's binding does not open: whoever can
// write to the store cannot make someone else's codes go to their phone.
func (k *Keys) SealPhone(subject, e164 string) ([]byte, error) {
	nonce := make([]byte, k.seal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.seal.Seal(nonce, nonce, []byte(e164), phoneSealAD(subject)), nil
}

// OpenPhone reverses SealPhone for the same subject.
func (k *Keys) OpenPhone(subject string, sealed []byte) (string, error) {
	if len(sealed) < k.seal.NonceSize() {
		return "", errors.New("sealed phone number is too short")
	}
	n := k.seal.NonceSize()
	plain, err := k.seal.Open(nil, sealed[:n], sealed[n:], phoneSealAD(subject))
	if err != nil {
		return "", errors.New("sealed phone number does not open under this key and identity")
	}
	return string(plain), nil
}

func phoneSealAD(subject string) []byte {
	return []byte("phone\x00" + subject)
}

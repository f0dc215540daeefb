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
	"strconv"
	"strings"
	"time"
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
	subject cipher.AEAD
	// lookup and lookupSeal keep phone sources' answers in the store
	// (lookup.go).
	lookup     []byte
	lookupSeal cipher.AEAD
	// device signs device cookies and hashes device ids for logs;
	// captcha signs CAPTCHA challenges and picks image texts (captcha.go).
	device  []byte
	captcha []byte
	// replay and replaySeal keep form POSTs waiting for a step-up
	// (replay.go).
	replay     []byte
	replaySeal cipher.AEAD

	// macs pools HMACs of the keys above (keys_mac.go).
	macs macPools
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
	subject, err := newGCM(derive("subject-seal"))
	if err != nil {
		return nil, err
	}
	lookupSeal, err := newGCM(derive("lookup-seal"))
	if err != nil {
		return nil, err
	}
	replaySeal, err := newGCM(derive("replay-seal"))
	if err != nil {
		return nil, err
	}
	k := &Keys{
		receipt: receipt,
		seal:    seal,
		subject: subject,
		limit:   derive("limit"),
		ID:      hex.EncodeToString(derive("kid")[:8]),
		token:   derive("token"),
		codeMAC: derive("code"),
		csrf:    derive("csrf"),
		session: derive("session"),
		phone:   derive("phone"),

		lookup:     derive("lookup"),
		lookupSeal: lookupSeal,
		device:     derive("device"),
		captcha:    derive("captcha"),
		replay:     derive("replay"),
		replaySeal: replaySeal,
	}
	k.macs = newMACPools(k.token, k.codeMAC, k.csrf, k.session, k.phone, k.limit, k.lookup, k.device, k.captcha, k.replay)
	return k, nil
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
	m := k.mac(k.codeMAC)
	defer k.macDone(k.codeMAC, m)
	m.add(challengeID)
	m.addByte(0)
	m.add(code)
	return append([]byte(nil), m.hmac()...)
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
	m := k.mac(k.limit)
	defer k.macDone(k.limit, m)
	m.add(kind)
	m.addByte(0)
	m.add(value)
	return string(m.encoded(m.hmac()[:18]))
}

// CSRFLifetime is how long a CSRF token is taken after its page was made:
// a form left open longer is refused, and the page, reloaded, carries a
// new one.
const CSRFLifetime = time.Hour

// csrfSkew is how far in the future a CSRF token's time may be: another
// instance's clock may run a little ahead of this one's.
const csrfSkew = time.Minute

// CSRFBinding is what a CSRF token is bound to: the browser's nonce
// cookie, the identity and session, and the scope of the handler whose
// page made it, so that a token from one handler's page is refused by
// another's (whose pages share the site's nonce cookie and the key).
type CSRFBinding struct {
	Nonce       string
	Identity    string
	SessionHash string
	Scope       string
}

// CSRFToken returns the token a form must carry, made at issued: the time
// in Unix seconds, a dot, and an HMAC over the time and the binding.
func (k *Keys) CSRFToken(b CSRFBinding, issued time.Time) string {
	m := k.mac(k.csrf)
	defer k.macDone(k.csrf, m)
	return string(k.csrfToken(m, b, issued))
}

// csrfToken builds the token of CSRFToken in m's answer.
func (k *Keys) csrfToken(m *macState, b CSRFBinding, issued time.Time) []byte {
	m.in = strconv.AppendInt(m.in, issued.Unix(), 10)
	unix := len(m.in)
	m.addByte(0)
	for _, s := range [...]string{b.Nonce, b.Identity, b.SessionHash, b.Scope} {
		m.add(s)
		m.addByte(0)
	}
	m.out = append(append(m.out, m.in[:unix]...), '.')
	return m.encoded(m.hmac())
}

// CheckCSRFToken reports whether token was made for b less than
// CSRFLifetime before now, comparing in constant time. The token is made
// again from the time it names, so a time that was changed, or written
// another way, fails the comparison.
func (k *Keys) CheckCSRFToken(token string, b CSRFBinding, now time.Time) bool {
	if token == "" || b.Nonce == "" {
		return false
	}
	issued, ok := csrfIssued(token)
	if !ok || now.Sub(issued) >= CSRFLifetime || issued.Sub(now) > csrfSkew {
		return false
	}
	m := k.mac(k.csrf)
	defer k.macDone(k.csrf, m)
	want := k.csrfToken(m, b, issued)
	return hmac.Equal(m.spare(token), want)
}

// csrfIssued reads the time a CSRF token names.
func csrfIssued(token string) (time.Time, bool) {
	unix, _, ok := strings.Cut(token, ".")
	if !ok {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// short is a keyed hash of parts, one after the other, in 24 characters.
func (k *Keys) short(key []byte, parts ...string) string {
	m := k.mac(key)
	defer k.macDone(key, m)
	return string(shortMAC(m, parts))
}

// shortMAC builds short's answer in m.
func shortMAC(m *macState, parts []string) []byte {
	for _, s := range parts {
		m.add(s)
	}
	return m.encoded(m.hmac()[:18])
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

// SealSubject encrypts and authenticates an identity for a store that keys
// identities by hash but must name them to an operator (the list of
// lock-outs): a dump of the store shows no identity, and only the service
// opens it.
func (k *Keys) SealSubject(subject string) ([]byte, error) {
	nonce := make([]byte, k.subject.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.subject.Seal(nonce, nonce, []byte(subject), []byte("subject")), nil
}

// OpenSubject reverses SealSubject.
func (k *Keys) OpenSubject(sealed []byte) (string, error) {
	n := k.subject.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed identity is too short")
	}
	plain, err := k.subject.Open(nil, sealed[:n], sealed[n:], []byte("subject"))
	if err != nil {
		return "", errors.New("sealed identity does not open under this key")
	}
	return string(plain), nil
}

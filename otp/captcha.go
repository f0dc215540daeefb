package otp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// A CAPTCHA before a send (issue 15) is a challenge the server issues and
// signs, bound to the identity, session and scope it was made for, with a
// short life; the client answers it with a proof of work over the token
// (otp/pow) or, without JavaScript, with the text of its image. Each
// answer is taken once: the caller claims the challenge's ID in a OnceStore
// before it accepts the answer (SECURITY.md rule 34).

// CaptchaLifetime is how long a CAPTCHA challenge can be answered.
const CaptchaLifetime = 10 * time.Minute

// CaptchaTextLength is the length of an image CAPTCHA's text.
const CaptchaTextLength = 5

// captchaAlphabet leaves out what reads alike when distorted (0/O, 1/I/L,
// 2/Z, 5/S, 8/B, G/6).
const captchaAlphabet = "ACDEFHJKMNPRTUVWXY34679"

// CaptchaBinding is what a challenge is bound to.
type CaptchaBinding struct {
	Identity    string
	SessionHash string
	Scope       string
}

// CaptchaChallenge is an issued challenge, as its token says.
type CaptchaChallenge struct {
	// ID names the challenge for its single use; it is random.
	ID string
	// Difficulty is the leading zero bits a proof of work must reach.
	Difficulty int
	Expires    time.Time
}

// The ways a challenge token is refused.
var (
	ErrCaptchaInvalid = errors.New("captcha challenge is not one this service made for this session")
	ErrCaptchaExpired = errors.New("captcha challenge has expired")
)

// IssueCaptcha makes a challenge of difficulty for b, valid for
// CaptchaLifetime from now, and its token: "c1", the ID, the difficulty,
// the expiry in Unix seconds and an HMAC over those and b, dot-separated.
func (k *Keys) IssueCaptcha(difficulty int, b CaptchaBinding, now time.Time) (string, CaptchaChallenge, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", CaptchaChallenge{}, err
	}
	c := CaptchaChallenge{
		ID:         base64.RawURLEncoding.EncodeToString(raw),
		Difficulty: difficulty,
		Expires:    now.Add(CaptchaLifetime).Truncate(time.Second),
	}
	payload := "c1." + c.ID + "." + strconv.Itoa(difficulty) + "." + strconv.FormatInt(c.Expires.Unix(), 10)
	return payload + "." + k.captchaMAC(payload, b), c, nil
}

// OpenCaptcha checks a token IssueCaptcha made for b and returns its
// challenge: ErrCaptchaInvalid for anything else, ErrCaptchaExpired once
// its time is up. The MAC is compared in constant time.
func (k *Keys) OpenCaptcha(token string, b CaptchaBinding, now time.Time) (CaptchaChallenge, error) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || len(token) > 200 {
		return CaptchaChallenge{}, ErrCaptchaInvalid
	}
	payload, mac := token[:i], token[i+1:]
	if !hmac.Equal([]byte(mac), []byte(k.captchaMAC(payload, b))) {
		return CaptchaChallenge{}, ErrCaptchaInvalid
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 4 || parts[0] != "c1" {
		return CaptchaChallenge{}, ErrCaptchaInvalid
	}
	d, err1 := strconv.Atoi(parts[2])
	exp, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil {
		return CaptchaChallenge{}, ErrCaptchaInvalid
	}
	c := CaptchaChallenge{ID: parts[1], Difficulty: d, Expires: time.Unix(exp, 0)}
	if !now.Before(c.Expires) {
		return c, ErrCaptchaExpired
	}
	return c, nil
}

func (k *Keys) captchaMAC(payload string, b CaptchaBinding) string {
	m := hmac.New(sha256.New, k.captcha)
	for _, s := range [...]string{"token", payload, b.Identity, b.SessionHash, b.Scope} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CaptchaText is the text the image of challenge id shows: derived from
// the ID under the key, so neither the token nor the store holds it, and
// every instance draws the same.
func (k *Keys) CaptchaText(id string) string {
	m := hmac.New(sha256.New, k.captcha)
	m.Write([]byte("image\x00" + id))
	sum := m.Sum(nil)
	out := make([]byte, CaptchaTextLength)
	for i := range out {
		out[i] = captchaAlphabet[int(sum[i])%len(captchaAlphabet)]
	}
	return string(out)
}

// CaptchaTextMatches compares what the user typed with the text, in
// constant time, ignoring case and spaces.
func CaptchaTextMatches(text, typed string) bool {
	typed = strings.ToUpper(strings.Join(strings.Fields(typed), ""))
	return subtle.ConstantTimeCompare([]byte(text), []byte(typed)) == 1
}

// OnceStore is the part of a store that makes a CAPTCHA answer single-use.
type OnceStore interface {
	// ClaimOnce records key until now+ttl and reports true, atomically,
	// unless key is recorded already (then false: it was used).
	ClaimOnce(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error)
}

// DeviceCookie is the value of a new device cookie for the random id: the
// id, a dot and an HMAC of it, so a browser can't choose its id.
func (k *Keys) DeviceCookie(id string) string {
	return id + "." + k.short(k.device, "cookie\x00", id)
}

// OpenDeviceCookie returns the id of a cookie DeviceCookie made; ok is
// false for anything else (forged, changed, empty).
func (k *Keys) OpenDeviceCookie(value string) (id string, ok bool) {
	id, mac, found := strings.Cut(value, ".")
	if !found || id == "" || len(value) > 100 {
		return "", false
	}
	m := k.mac(k.device)
	defer k.macDone(k.device, m)
	want := shortMAC(m, []string{"cookie\x00", id})
	if !hmac.Equal(m.spare(mac), want) {
		return "", false
	}
	return id, true
}

// DeviceHash names a device in logs and in the store: keyed and short, so
// a log line neither carries the cookie nor can be matched to one without
// the key.
func (k *Keys) DeviceHash(id string) string {
	if id == "" {
		return ""
	}
	m := k.mac(k.device)
	defer k.macDone(k.device, m)
	return string(shortMAC(m, []string{"hash\x00", id})[:12])
}

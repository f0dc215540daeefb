package otp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ReplayStore keeps form POSTs that arrived without a valid step-up, so
// that the browser can send them once the user has stepped up (SECURITY.md
// rule 36). The store sees only what ReplayKey and SealReplay make of a
// kept form: an opaque key (a keyed hash of the form's one-time id) and an
// opaque, authenticated value. It never holds the fields in clear.
type ReplayStore interface {
	// KeepReplay keeps value under key for ttl from now, replacing what
	// was there.
	KeepReplay(ctx context.Context, key string, value []byte, now time.Time, ttl time.Duration) error
	// PeekReplay returns the value kept under key, if it is still there
	// at now, and leaves it there.
	PeekReplay(ctx context.Context, key string, now time.Time) (value []byte, ok bool, err error)
	// TakeReplay returns the value kept under key and removes it, as one
	// atomic step: of two concurrent takes, one gets the value and the
	// other finds nothing.
	TakeReplay(ctx context.Context, key string, now time.Time) (value []byte, ok bool, err error)
}

// ReplayBinding is what a kept form is bound to: the identity and session
// that posted it, the scope of the handler that kept it (its realm, or its
// sites and path_prefix), and the form's one-time id. A sealed form opens
// only under the same binding.
type ReplayBinding struct {
	ID          string
	Identity    string
	SessionHash string
	Scope       string
}

// KeptForm is a form POST waiting for a step-up: the URL it was posted to
// (path and query) and its urlencoded body, byte for byte.
type KeptForm struct {
	URL  string `json:"u"`
	Body []byte `json:"b"`
}

// ErrReplayRefused is a sealed form that does not open under the binding
// it is presented with: another identity's, session's or scope's, or
// tampered with.
var ErrReplayRefused = errors.New("kept form does not open under this binding")

// ReplayKey names a kept form in a ReplayStore: a keyed hash of its id, so
// a dump of the store does not hand out ids a browser could present.
func (k *Keys) ReplayKey(id string) string {
	m := hmac.New(sha256.New, k.replay)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// SealReplay encrypts and authenticates a kept form for its binding.
func (k *Keys) SealReplay(b ReplayBinding, f KeptForm) ([]byte, error) {
	plain, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, k.replaySeal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.replaySeal.Seal(nonce, nonce, plain, replayAD(b)), nil
}

// OpenReplay reverses SealReplay under the same binding, or fails with
// ErrReplayRefused.
func (k *Keys) OpenReplay(b ReplayBinding, sealed []byte) (KeptForm, error) {
	n := k.replaySeal.NonceSize()
	if len(sealed) < n {
		return KeptForm{}, ErrReplayRefused
	}
	plain, err := k.replaySeal.Open(nil, sealed[:n], sealed[n:], replayAD(b))
	if err != nil {
		return KeptForm{}, ErrReplayRefused
	}
	var f KeptForm
	if err := json.Unmarshal(plain, &f); err != nil {
		return KeptForm{}, ErrReplayRefused
	}
	return f, nil
}

// replayAD is the binding as associated data; each part is
// length-prefixed, so no two bindings run together into the same bytes.
func replayAD(b ReplayBinding) []byte {
	ad := []byte("replay")
	for _, part := range []string{b.ID, b.Identity, b.SessionHash, b.Scope} {
		ad = binary.AppendUvarint(ad, uint64(len(part)))
		ad = append(ad, part...)
	}
	return ad
}

// SignAppAsk signs the moment an application asked for a step-up on url
// (RFC 9470) for an identity, session and scope, so that a browser can
// carry it until it comes back: "<unix ms>.<mac>".
func (k *Keys) SignAppAsk(b ReplayBinding, url string, at time.Time) string {
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	return ms + "." + k.appAskMAC(b, url, ms)
}

// CheckAppAsk returns the moment SignAppAsk signed for the same binding and
// url, or false.
func (k *Keys) CheckAppAsk(b ReplayBinding, url, signed string) (time.Time, bool) {
	ms, mac, ok := strings.Cut(signed, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(k.appAskMAC(b, url, ms))) {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}

func (k *Keys) appAskMAC(b ReplayBinding, url, ms string) string {
	m := hmac.New(sha256.New, k.replay)
	b.ID = "app-ask\x00" + ms
	m.Write(replayAD(b))
	m.Write([]byte(url))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

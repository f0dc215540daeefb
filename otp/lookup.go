package otp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"
)

// LookupCache keeps the answers of phone sources (otp/source) for a while,
// so that each step-up does not ask the database, the directory or the API
// again, and so that several Caddy instances share what one of them learnt.
//
// The store sees only what SealLookup and LookupKey make of an answer: an
// opaque key (a keyed hash of the identity) and an opaque, authenticated
// value (the sealed number). It never holds the identity or the number in
// clear.
type LookupCache interface {
	// CachedLookup returns the value kept under key, if it is still
	// there at now.
	CachedLookup(ctx context.Context, key string, now time.Time) (value []byte, ok bool, err error)
	// CacheLookup keeps value under key for ttl from now, replacing what
	// was there.
	CacheLookup(ctx context.Context, key string, value []byte, now time.Time, ttl time.Duration) error
}

// LookupKey names one identity's answer from one chain of phone sources
// (scope) in a LookupCache: a keyed hash, so a dump of the store cannot be
// matched against a list of identities, and two chains configured apart do
// not read each other's answers.
func (k *Keys) LookupKey(scope, identity string) string {
	m := hmac.New(sha256.New, k.lookup)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write([]byte(identity))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// SealLookup encrypts and authenticates an answer for the LookupCache. The
// key it is kept under is authenticated with it, so an answer copied onto
// another identity's key does not open: whoever can write to the store
// cannot send someone else's codes to their own phone.
func (k *Keys) SealLookup(key string, answer []byte) ([]byte, error) {
	nonce := make([]byte, k.lookupSeal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.lookupSeal.Seal(nonce, nonce, answer, lookupAD(key)), nil
}

// OpenLookup reverses SealLookup for the same key.
func (k *Keys) OpenLookup(key string, sealed []byte) ([]byte, error) {
	n := k.lookupSeal.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed lookup answer is too short")
	}
	plain, err := k.lookupSeal.Open(nil, sealed[:n], sealed[n:], lookupAD(key))
	if err != nil {
		return nil, errors.New("sealed lookup answer does not open under this key")
	}
	return plain, nil
}

func lookupAD(key string) []byte {
	return []byte("lookup\x00" + key)
}

package otp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"sync"
)

// Pooled HMACs (issue 17). hmac.New allocates two SHA-256 states and
// hashes the key into both on every call, and a step-up makes a dozen or
// more (limit keys, the phone and session hashes, the CSRF token, the
// code's MAC, the device cookie). The keys never change after
// DeriveKeys, so each keeps a pool of HMACs made for it; one goes back
// reset, holding nothing of what it hashed, and comes out ready to use.
// Each comes with a buffer the input is gathered in and the sum written
// to, so that hashing strings allocates nothing but the answer (a string
// written to a hash.Hash is copied to the heap first). The output is the
// same HMAC-SHA256 either way (keys_mac_test.go).

// macState is an HMAC of one key and its buffer.
type macState struct {
	h   hash.Hash
	buf []byte
}

// maxMACBuffer bounds the buffer a state keeps between uses: the inputs
// are ids, hashes and times, and an odd long one is not kept.
const maxMACBuffer = 1 << 10

// macPools holds a pool per derived key, by the address of the key's
// first byte: fixed after DeriveKeys, read without a lock.
type macPools map[*byte]*sync.Pool

func newMACPools(keys ...[]byte) macPools {
	pools := make(macPools, len(keys))
	for _, key := range keys {
		pools[&key[0]] = &sync.Pool{New: func() any { return newMACState(key) }}
	}
	return pools
}

func newMACState(key []byte) *macState {
	return &macState{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 128)}
}

// mac is an HMAC-SHA256 state of key, fresh; give it back with macDone.
func (k *Keys) mac(key []byte) *macState {
	if len(key) > 0 {
		if p := k.macs[&key[0]]; p != nil {
			return p.Get().(*macState)
		}
	}
	return newMACState(key)
}

// macDone resets m, made by mac(key), and keeps it for the next.
func (k *Keys) macDone(key []byte, m *macState) {
	clear(m.buf[:cap(m.buf)]) // nothing of what was hashed stays, kept or dropped
	if len(key) == 0 || cap(m.buf) > maxMACBuffer {
		return
	}
	if p := k.macs[&key[0]]; p != nil {
		m.h.Reset()
		m.buf = m.buf[:0]
		p.Put(m)
	}
}

// sum is the HMAC under m's key of parts, one after the other, in m's
// buffer: valid until m is given back.
func (m *macState) sum(parts ...string) []byte {
	b := m.buf[:0]
	for _, p := range parts {
		b = append(b, p...)
	}
	m.h.Write(b)
	b = m.h.Sum(b[:0])
	m.buf = b
	return b
}

// macString is the unpadded base64url of the first n bytes of the HMAC
// under key of parts.
func (k *Keys) macString(key []byte, n int, parts ...string) string {
	m := k.mac(key)
	defer k.macDone(key, m)
	var out [base64EncodedSHA256]byte
	enc := base64.RawURLEncoding
	sum := m.sum(parts...)[:n]
	enc.Encode(out[:], sum)
	return string(out[:enc.EncodedLen(n)])
}

// base64EncodedSHA256 is the length of a SHA-256 sum in unpadded base64.
const base64EncodedSHA256 = 43

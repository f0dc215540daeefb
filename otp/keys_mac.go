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
// The output is the same HMAC-SHA256 either way (keys_mac_test.go).
//
// Each pooled HMAC carries scratch space too: the input is gathered in it
// and written once, the sum lands in it and the encoded answer is built in
// it, so a keyed hash of a few strings allocates only the string it
// returns (a refused send under a bot flood makes ten or more of them).

// macState is a pooled HMAC of one key with its scratch space.
type macState struct {
	h   hash.Hash
	in  []byte            // the input, gathered by add and addByte
	sum [sha256.Size]byte // where sum puts the HMAC
	out []byte            // an encoded answer being built
}

// maxMACScratch is the most scratch space a pooled HMAC keeps between
// uses: an odd long input is served, then its buffer let go.
const maxMACScratch = 1 << 10

// macPools holds a pool per derived key, by the address of the key's
// first byte: fixed after DeriveKeys, read without a lock.
type macPools map[*byte]*sync.Pool

func newMACPools(keys ...[]byte) macPools {
	pools := make(macPools, len(keys))
	for _, key := range keys {
		pools[&key[0]] = &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, key)} }}
	}
	return pools
}

// mac is an HMAC-SHA256 of key, fresh, with empty scratch space; give it
// back with macDone.
func (k *Keys) mac(key []byte) *macState {
	if len(key) > 0 {
		if p := k.macs[&key[0]]; p != nil {
			return p.Get().(*macState)
		}
	}
	return &macState{h: hmac.New(sha256.New, key)}
}

// macDone resets m, made by mac(key), wipes its scratch space (which held
// what was hashed: a code, a number) and keeps it for the next.
func (k *Keys) macDone(key []byte, m *macState) {
	if len(key) == 0 {
		return
	}
	p := k.macs[&key[0]]
	if p == nil {
		return
	}
	m.h.Reset()
	clear(m.in)
	clear(m.sum[:])
	clear(m.out)
	m.in, m.out = m.in[:0], m.out[:0]
	if cap(m.in) > maxMACScratch {
		m.in = nil
	}
	if cap(m.out) > maxMACScratch {
		m.out = nil
	}
	p.Put(m)
}

// add appends s to the input.
func (m *macState) add(s string) { m.in = append(m.in, s...) }

// addByte appends c to the input.
func (m *macState) addByte(c byte) { m.in = append(m.in, c) }

// hmac is the HMAC of the input so far, in m's scratch space: valid until
// m goes back.
func (m *macState) hmac() []byte {
	m.h.Write(m.in)
	return m.h.Sum(m.sum[:0])
}

// encoded is the unpadded base64url of b appended to m's answer so far.
func (m *macState) encoded(b []byte) []byte {
	m.out = base64.RawURLEncoding.AppendEncode(m.out, b)
	return m.out
}

// spare is s copied into the input's space, which hmac has spent: a
// string to compare with an answer without allocating for it.
func (m *macState) spare(s string) []byte {
	m.in = append(m.in[:0], s...)
	return m.in
}

package otp

import (
	"crypto/hmac"
	"crypto/sha256"
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

// macPools holds a pool per derived key, by the address of the key's
// first byte: fixed after DeriveKeys, read without a lock.
type macPools map[*byte]*sync.Pool

func newMACPools(keys ...[]byte) macPools {
	pools := make(macPools, len(keys))
	for _, key := range keys {
		pools[&key[0]] = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
	}
	return pools
}

// mac is an HMAC-SHA256 of key, fresh; give it back with macDone.
func (k *Keys) mac(key []byte) hash.Hash {
	if len(key) > 0 {
		if p := k.macs[&key[0]]; p != nil {
			return p.Get().(hash.Hash)
		}
	}
	return hmac.New(sha256.New, key)
}

// macDone resets m, made by mac(key), and keeps it for the next.
func (k *Keys) macDone(key []byte, m hash.Hash) {
	if len(key) == 0 {
		return
	}
	if p := k.macs[&key[0]]; p != nil {
		m.Reset()
		p.Put(m)
	}
}

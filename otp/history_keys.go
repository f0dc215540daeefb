package otp

import (
	"crypto/rand"
	"encoding/json"
	"errors"
)

// historyAD binds a sealed history entry to its purpose, so no other
// sealed value of the same key opens as one.
var historyAD = []byte("history")

// The key kinds (Keys.LimitKey) that name history lists.
const (
	historyIdentityKind = "history-identity"
	historyPrefixKind   = "history-prefix"
)

// SealHistory encrypts and authenticates one history entry for the store:
// a dump of the store shows no identity, not even the masked number.
func (k *Keys) SealHistory(e HistoryEntry) ([]byte, error) {
	plain, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, k.subject.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.subject.Seal(nonce, nonce, plain, historyAD), nil
}

// OpenHistory reverses SealHistory.
func (k *Keys) OpenHistory(sealed []byte) (HistoryEntry, error) {
	var e HistoryEntry
	n := k.subject.NonceSize()
	if len(sealed) < n {
		return e, errors.New("sealed history entry is too short")
	}
	plain, err := k.subject.Open(nil, sealed[:n], sealed[n:], historyAD)
	if err != nil {
		return e, errors.New("sealed history entry does not open under this key")
	}
	err = json.Unmarshal(plain, &e)
	return e, err
}

// HistoryIdentityKey names an identity's history list.
func (k *Keys) HistoryIdentityKey(identity string) string {
	return k.LimitKey(historyIdentityKind, identity)
}

// HistoryPrefixKey names the history list of a number prefix (an E.164
// number without its last 4 digits).
func (k *Keys) HistoryPrefixKey(prefix string) string {
	return k.LimitKey(historyPrefixKind, prefix)
}

package otp

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Send history: every send (sent, refused and why, failed) and every
// verification (ok, wrong, locked ...) is kept in the store for a while, so
// an operator can see what happened to an identity or a number prefix
// (`caddy sms-stepup history`). The store keeps each entry sealed with the
// service's key (Keys.SealHistory) in lists named by keyed hashes
// (Keys.LimitKey): it holds no identity, no number and no code in clear,
// and an entry itself only ever carries the masked number (SECURITY.md rule
// 33).

// HistoryStore is the part of a store that keeps the send history. It is
// optional: a Service whose store is not one keeps no history.
type HistoryStore interface {
	// AppendHistory adds one entry to each of its lists, dropping from
	// each what is older than the record's retention and the oldest
	// entries past the list's Max.
	AppendHistory(ctx context.Context, rec HistoryRecord) error
	// History returns up to max entries of the list key made at or after
	// since and less than retention before now, newest first. A list
	// never written is empty, not an error.
	History(ctx context.Context, key string, since, now time.Time, retention time.Duration, max int) ([]HistoryItem, error)
}

// HistoryRecord is one entry for HistoryStore.AppendHistory.
type HistoryRecord struct {
	// Lists are the lists the entry goes in.
	Lists []HistoryList
	// At is when it happened.
	At time.Time
	// Data is the sealed entry; opaque to the store, and unique (its
	// nonce is random), so two entries made at the same instant both stay.
	Data []byte
	// Retention is how long the entry is kept.
	Retention time.Duration
	// Sent, for a send, has the store note on its challenge which gateway
	// took the code (in the same step where it can), for the
	// verification's entry (VerifyResult.Gateway); an empty Gateway notes
	// that none did (a send that failed after its entry was kept ahead).
	// A challenge gone meanwhile stays gone. Nil: nothing to note.
	Sent *SentGateway
	// Replaces is a sealed entry this one takes the place of in the lists
	// (a send's entry sealed ahead, IssueRequest.History, when the send
	// went otherwise); nil for none. With Sent, the challenge's gateway is
	// noted even when empty (a send that failed).
	Replaces []byte
}

// SentGateway names a challenge and the gateway that took its latest code.
type SentGateway struct {
	Subject, ChallengeID, Gateway string
}

// HistoryList names one list and bounds its length.
type HistoryList struct {
	Key string
	Max int
}

// HistoryItem is one stored entry as a HistoryStore returns it.
type HistoryItem struct {
	At   time.Time
	Data []byte
}

// Validate reports a record no store should keep.
func (r HistoryRecord) Validate() error {
	if len(r.Lists) == 0 || len(r.Data) == 0 || r.Retention < time.Millisecond {
		return fmt.Errorf("history record: expected lists, data and a retention of at least 1ms (got %d lists, %d bytes, %s)",
			len(r.Lists), len(r.Data), r.Retention)
	}
	for _, l := range r.Lists {
		if l.Key == "" || l.Max < 1 {
			return fmt.Errorf("history list %q max %d: expected a key and a max of at least 1", l.Key, l.Max)
		}
	}
	return nil
}

// HistoryPolicy is how much history the service keeps. Zero Retention
// keeps none.
type HistoryPolicy struct {
	// Retention is how long an entry is kept (DefaultHistoryRetention).
	Retention time.Duration
	// MaxPerList caps the entries kept per identity and per number
	// prefix; the oldest go first (DefaultHistoryMax).
	MaxPerList int
}

// The history defaults, and the longest retention allowed.
const (
	DefaultHistoryRetention = 7 * 24 * time.Hour
	DefaultHistoryMax       = 1000
	MaxHistoryRetention     = 366 * 24 * time.Hour
	MaxHistoryPerList       = 100000
)

// On reports whether the policy keeps history.
func (p HistoryPolicy) On() bool { return p.Retention > 0 }

// Validate reports a policy outside its range.
func (p HistoryPolicy) Validate() error {
	if p.Retention < 0 || p.Retention > MaxHistoryRetention {
		return fmt.Errorf("history_retention %s: expected 0 (off) to %s", p.Retention, MaxHistoryRetention)
	}
	if p.On() && (p.MaxPerList < 1 || p.MaxPerList > MaxHistoryPerList) {
		return fmt.Errorf("history_max %d: expected 1 to %d", p.MaxPerList, MaxHistoryPerList)
	}
	return nil
}

// The events and outcomes of a HistoryEntry.
const (
	HistorySend   = "send"
	HistoryVerify = "verify"

	HistorySent    = "sent"
	HistoryRefused = "refused"
	HistoryFailed  = "failed"
)

// HistoryEntry is one send or verification.
type HistoryEntry struct {
	At time.Time `json:"at"`
	// Event is HistorySend or HistoryVerify.
	Event string `json:"event"`
	// Outcome is, for a send, HistorySent, HistoryRefused or
	// HistoryFailed; for a verification a VerifyStatus ("ok",
	// "wrong_code", "locked" ...).
	Outcome string `json:"outcome"`
	// Reason says why a send was refused or failed ("cooldown",
	// "limit:prefix", "blocked:prefix", "gateway" ...).
	Reason   string `json:"reason,omitempty"`
	Identity string `json:"identity"`
	// Phone is the number, masked; never in full.
	Phone string `json:"phone,omitempty"`
	// PrefixKey is the keyed hash of the number's prefix (the number
	// without its last 4 digits): what the prefix's list is named by.
	PrefixKey string `json:"prefix_key,omitempty"`
	Gateway   string `json:"gateway,omitempty"`
	// Challenge is the first characters of the challenge id: enough to
	// tell a user's challenges apart, too few to act on one.
	Challenge string `json:"challenge,omitempty"`
	Voice     bool   `json:"voice,omitempty"`
}

// shortIDLength is how much of a challenge id an entry keeps.
const shortIDLength = 8

// ShortID is the part of a challenge id that history and logs show.
func ShortID(id string) string {
	if len(id) > shortIDLength {
		return id[:shortIDLength]
	}
	return id
}

// ErrNoHistory says the service keeps no history: history_retention is 0,
// or the store cannot keep one.
var ErrNoHistory = errors.New("no send history is kept (history_retention 0, or a store without history)")

// HistoryQuery asks for the history of one identity or one number prefix.
type HistoryQuery struct {
	// Identity, or else Prefix: an E.164 number without its last 4 digits
	// (+44770090 for +447700900123), as the prefix send limit counts, or
	// the whole number (HistoryPrefixOf).
	Identity string
	Prefix   string
	// Since bounds how far back; zero is the whole retention.
	Since time.Time
	// Max caps the entries returned (the list's max when 0).
	Max int
}

package otp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// Config holds the verification rules. Defaults come from DefaultConfig.
type Config struct {
	CodeLength  int
	CodeTTL     time.Duration
	MaxAttempts int
	// MaxSends caps the codes (first send plus resends) of one challenge.
	MaxSends     int
	CooldownBase time.Duration
	CooldownMax  time.Duration
	// CooldownJitter is the largest share of each cooldown added to it
	// at random (0 to 1; backoff.go). Zero: cooldowns are exact.
	CooldownJitter float64
	SendWindow     time.Duration
	Failures       FailurePolicy
	// ServiceName appears in the SMS text.
	ServiceName string
	// Messages renders the SMS text. Nil: DefaultMessages.
	Messages *Messages
	// MaxCalls caps the voice calls of one challenge (they also count as
	// sends, under the same cooldown).
	MaxCalls int
	// ReceiptBase, when set, is the public URL under which gateways report
	// delivery: each message gets an unguessable token below it.
	ReceiptBase string
	// Limits cap the codes sent per phone, identity, client address,
	// number prefix, country and day, across all instances sharing the
	// store.
	Limits SendLimits
	// RevocationRefresh is how long an instance answers from memory
	// whether an identity's tokens are revoked before reading the store
	// again (DefaultRevocationRefresh if zero): the most a revocation made
	// on another instance, or by `caddy sms-stepup revoke`, takes to reach
	// this one.
	RevocationRefresh time.Duration
	// Breaker is the conversion breaker (breaker.go); zero is off. The
	// store must then be a BreakerStore.
	Breaker BreakerPolicy
	// History is how long and how much send history is kept
	// (history.go); a store that is no HistoryStore keeps none.
	History HistoryPolicy
}

// MaxCodeTTL is the longest a code may live (NIST SP 800-63B 3.1.3.2 asks
// for a short lifetime; SECURITY.md sets ten minutes).
const MaxCodeTTL = 10 * time.Minute

// DefaultConfig returns the defaults of SECURITY.md: 6 digits, 5 minutes,
// 5 attempts, resend cooldown from 30 s, failure delays from 30 s to 1 h after
// 10 consecutive failures, a hard stop at 100, and DefaultSendLimits.
func DefaultConfig() Config {
	return Config{
		CodeLength:   6,
		CodeTTL:      5 * time.Minute,
		MaxAttempts:  5,
		MaxSends:     5,
		CooldownBase: 30 * time.Second,
		CooldownMax:  10 * time.Minute,
		SendWindow:   time.Hour,
		Failures: FailurePolicy{
			Budget:    10,
			DelayBase: 30 * time.Second,
			DelayMax:  time.Hour,
			HardLimit: 100,
			Window:    24 * time.Hour,
		},
		ServiceName: "Step-up",
		MaxCalls:    2,
		Limits:      DefaultSendLimits(),
		History:     HistoryPolicy{Retention: DefaultHistoryRetention, MaxPerList: DefaultHistoryMax},
	}
}

// Validate reports the first setting outside its allowed range.
func (c Config) Validate() error {
	switch {
	case c.CodeLength < MinCodeLength || c.CodeLength > MaxCodeLength:
		return fmt.Errorf("code_length %d: expected %d to %d digits", c.CodeLength, MinCodeLength, MaxCodeLength)
	case c.CodeTTL <= 0 || c.CodeTTL > MaxCodeTTL:
		return fmt.Errorf("code_ttl %s: expected more than 0 and at most %s", c.CodeTTL, MaxCodeTTL)
	case c.MaxAttempts < 1 || c.MaxAttempts > 10:
		return fmt.Errorf("max_attempts %d: expected 1 to 10", c.MaxAttempts)
	case c.MaxSends < 1:
		return fmt.Errorf("max_sends %d: expected at least 1", c.MaxSends)
	case c.MaxCalls < 0:
		return fmt.Errorf("max_calls %d: expected 0 or more", c.MaxCalls)
	case c.Failures.HardLimit < 1 || c.Failures.HardLimit > 100:
		return fmt.Errorf("failure hard limit %d: expected 1 to 100", c.Failures.HardLimit)
	case c.Failures.Budget < 1 || c.Failures.Budget > c.Failures.HardLimit:
		return fmt.Errorf("failure budget %d: expected 1 to %d", c.Failures.Budget, c.Failures.HardLimit)
	case c.Failures.DelayBase <= 0 || c.Failures.DelayMax < c.Failures.DelayBase || c.Failures.Window < c.Failures.DelayMax:
		// A zero delay or window would switch the per-identity limit off.
		return fmt.Errorf("failure delays %s..%s over %s: expected 0 < base <= max <= window",
			c.Failures.DelayBase, c.Failures.DelayMax, c.Failures.Window)
	case c.CooldownBase <= 0 || c.CooldownMax < c.CooldownBase || c.SendWindow <= 0:
		return fmt.Errorf("resend cooldown %s..%s: expected 0 < base <= max, and a send window", c.CooldownBase, c.CooldownMax)
	case !validJitter(c.CooldownJitter):
		return fmt.Errorf("resend jitter %g: expected 0 to %g", c.CooldownJitter, MaxCooldownJitter)
	case c.RevocationRefresh < 0 || c.RevocationRefresh > MaxRevocationRefresh:
		return fmt.Errorf("revocation_refresh %s: expected 0 (the default, %s) to %s", c.RevocationRefresh, DefaultRevocationRefresh, MaxRevocationRefresh)
	}
	if err := c.Breaker.Validate(); err != nil {
		return err
	}
	if err := c.History.Validate(); err != nil {
		return err
	}
	return c.Limits.Validate()
}

// Service runs the step-up: it makes codes, issues challenges through the
// Store, sends through the Gateway and verifies.
type Service struct {
	cfg     Config
	store   Store
	gateway Gateway
	keys    *Keys
	clock   Clock
	rand    io.Reader

	revoked revocations

	// breaker keeps the conversion breaker's counts; nil when it is off.
	breaker BreakerStore
	// history keeps the send history; nil when none is kept.
	history HistoryStore

	// voice is the gateway's voice capability, nil when it cannot call.
	voice Caller

	// issuer is the store's whole-result issue, nil when it has none;
	// historyAhead is set when it keeps a send's history entry in the
	// send's own step, which then is sealed ahead (history_ahead.go).
	issuer       ResultIssuer
	historyAhead bool
	// lastGateway is the gateway that took the latest SMS ([0]) and call
	// ([1]): the one a send's entry sealed ahead names.
	lastGateway [2]atomic.Pointer[string]
	// sent notes where the codes this instance sent went, for their
	// verifications' entries sealed ahead (history_verify_ahead.go).
	sent sentNotes

	// refusals are the store's refusals of sends by a limit or a block,
	// repeated for a while without the store (refusal_memo.go).
	refusals *refusalMemo
}

// NewService builds a Service. clock and random may be nil for the system
// clock and crypto/rand.
func NewService(cfg Config, store Store, gateway Gateway, keys *Keys, clock Clock, random io.Reader) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || gateway == nil || keys == nil {
		return nil, errors.New("service needs a store, a gateway and keys")
	}
	if cfg.Messages == nil {
		m, err := NewMessages(MessagesConfig{})
		if err != nil {
			return nil, err
		}
		cfg.Messages = m
	}
	if clock == nil {
		clock = SystemClock{}
	}
	if random == nil {
		random = rand.Reader
	}
	var breaker BreakerStore
	if cfg.Breaker.On() {
		var ok bool
		if breaker, ok = store.(BreakerStore); !ok {
			return nil, fmt.Errorf("%w (the store is a %T)", ErrNoBreakerStore, store)
		}
	}
	var history HistoryStore
	if cfg.History.On() {
		history, _ = store.(HistoryStore)
	}
	// The name only routes delivery reports, which the service does not take.
	voice := CapabilitiesOf("", gateway).Voice
	issuer, _ := store.(ResultIssuer)
	return &Service{cfg: cfg, store: sealedSubjects{store, keys}, breaker: breaker, history: history, gateway: gateway, voice: voice,
		keys: keys, clock: clock, rand: random, issuer: issuer, refusals: newRefusalMemo(), historyAhead: history != nil && issuer != nil && issuer.KeepsHistoryInIssue()}, nil
}

// Config returns the service's rules.
func (s *Service) Config() Config { return s.cfg }

// Keys returns the service's keys.
func (s *Service) Keys() *Keys { return s.keys }

// RecordDelivery stores a provider's delivery report for a receipt token
// (from the report's URL). It returns the identity and challenge the token
// names; ok is false for a token this service did not make.
func (s *Service) RecordDelivery(ctx context.Context, token string, status DeliveryStatus) (subject, challengeID string, ok bool, err error) {
	subject, challengeID, ok = s.keys.OpenReceipt(token)
	if !ok {
		return "", "", false, nil
	}
	if err := s.store.SetDelivery(ctx, subject, challengeID, status, s.clock.Now()); err != nil {
		return subject, challengeID, true, storeErr(err)
	}
	return subject, challengeID, true, nil
}

// VerifyInput is a code submitted for a challenge.
type VerifyInput struct {
	Subject     string
	SessionHash string
	ChallengeID string
	Code        string
}

// verify checks a code: one atomic count-compare-consume in the store,
// which also counts a verified code as a conversion for the breaker when
// it is on (VerifyRequest.BreakerConvert).
func (s *Service) verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	code, ok := NormalizeCode(in.Code, s.cfg.CodeLength)
	if !ok {
		return VerifyResult{}, ErrMalformedCode
	}
	now := s.clock.Now()
	res, err := s.store.Verify(ctx, VerifyRequest{
		Subject:     in.Subject,
		ChallengeID: in.ChallengeID,
		SessionHash: in.SessionHash,
		CodeMAC:     s.keys.CodeMAC(in.ChallengeID, code),
		Now:         now,
		History:     s.sealVerifyAhead(in, now),
		Failures:    s.cfg.Failures,
		// The store counts the conversion: in the same step where it
		// can (memory, one Redis server or Sentinel), just after it on a
		// Cluster.
		BreakerConvert: s.breaker != nil,
	})
	if err != nil {
		return VerifyResult{}, storeErr(err)
	}
	res.PhoneMasked = s.keys.OpenMasked(in.Subject, res.PhoneMasked)
	return res, nil
}

// Challenge returns a live challenge of the subject bound to sessionHash.
func (s *Service) Challenge(ctx context.Context, subject, sessionHash, id string) (*Challenge, error) {
	c, err := s.store.Challenge(ctx, subject, id, s.clock.Now())
	if err != nil {
		return nil, storeErr(err)
	}
	if c.SessionHash != sessionHash {
		return nil, ErrChallengeNotFound
	}
	return s.openChallenge(c), nil
}

// Identity returns the subject's counters.
func (s *Service) Identity(ctx context.Context, subject string) (IdentityState, error) {
	st, err := s.store.Identity(ctx, subject, s.clock.Now())
	if err != nil {
		return IdentityState{}, storeErr(err)
	}
	return st, nil
}

func newID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

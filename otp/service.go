package otp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
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
	return &Service{cfg: cfg, store: sealedSubjects{store, keys}, breaker: breaker, history: history, gateway: gateway, voice: voice,
		keys: keys, clock: clock, rand: random}, nil
}

// Config returns the service's rules.
func (s *Service) Config() Config { return s.cfg }

// Keys returns the service's keys.
func (s *Service) Keys() *Keys { return s.keys }

// SendRequest asks for a code to be sent.
type SendRequest struct {
	Subject     string
	SessionHash string
	Phone       Phone
	// ResendID is the challenge the browser already has, if any: a resend
	// puts a new code in it (the old one stops working) and keeps its
	// attempt count.
	ResendID string
	Locale   string
	// Voice reads the code out in a phone call instead of an SMS; only as
	// a resend, and only through a gateway that can call.
	Voice bool
	// ClientIP is the client's address as Caddy determined it (honouring
	// trusted_proxies), never a raw X-Forwarded-For. Empty skips the
	// per-address limit.
	ClientIP string
	// Device is the id of the browser's signed device cookie; empty
	// skips the per-device limit.
	Device string
	// Action is what the code confirms, in Locale, for the SMS to name;
	// "" when the route names none. It comes from configuration, never
	// from the client.
	Action string
}

// SendResult is a challenge whose code went to the gateway.
type SendResult struct {
	Challenge *Challenge
	Receipt   Receipt
	Resent    bool
}

// send makes a code, stores its MAC in a new or resent challenge while
// counting the send against the send limits (one atomic store step), and
// sends it. A send that the identity's lock-out, its cooldown or a send
// limit refuses changes nothing in the store and never reaches the gateway
// (*LockedError, *CooldownError, *RateLimitError); a send that passed stays
// counted even if the gateway then fails, since the provider may have
// charged for it and retrying must not be free. Store failures come back
// wrapping ErrStoreUnavailable and nothing is sent; gateway failures wrap
// ErrSendFailed. A send to a number whose prefix, range or country the
// conversion breaker has blocked never reaches the gateway either
// (*BlockedError): it is refused before the store's send, or, when a
// concurrent send set the block meanwhile, just after it.
func (s *Service) send(ctx context.Context, req SendRequest) (SendResult, error) {
	if req.Voice && (s.voice == nil || req.ResendID == "") {
		// Before the limits and the store: a call that cannot be made must
		// not replace the code, spend a send or start the cooldown.
		return SendResult{}, ErrNoVoice
	}
	scopes, err := s.breakerAdmits(ctx, req.Phone)
	if err != nil {
		return SendResult{}, err
	}
	code, err := NewCode(s.rand, s.cfg.CodeLength)
	if err != nil {
		return SendResult{}, err
	}
	c, err := s.issue(ctx, req, code)
	if err != nil {
		return SendResult{}, err
	}
	resent := c.ID == req.ResendID
	if err := s.breakerCounts(ctx, c.ID, scopes); err != nil {
		return SendResult{Challenge: c, Resent: resent}, err
	}
	msg := Message{To: req.Phone.E164, Locale: req.Locale, Ref: c.ID}
	if req.Voice {
		msg.Body = s.cfg.Messages.ComposeVoice(req.Locale, s.cfg.ServiceName, code)
	} else if msg.Body, err = s.cfg.Messages.Compose(req.Locale, s.cfg.ServiceName, code, s.cfg.CodeTTL, req.Action); err != nil {
		return SendResult{Challenge: c, Resent: resent}, err
	}
	if s.cfg.ReceiptBase != "" {
		msg.ReceiptBase = s.cfg.ReceiptBase
		if msg.ReceiptToken, err = s.keys.SealReceipt(req.Subject, c.ID); err != nil {
			return SendResult{Challenge: c, Resent: resent}, err
		}
	}
	var receipt Receipt
	if req.Voice {
		receipt, err = s.voice.Call(ctx, msg)
	} else {
		receipt, err = s.gateway.Send(ctx, msg)
	}
	if err != nil {
		return SendResult{Challenge: c, Resent: resent}, fmt.Errorf("%w: %w", ErrSendFailed, err)
	}
	return SendResult{Challenge: c, Receipt: receipt, Resent: resent}, nil
}

// issue stores code's MAC for one send in the one store step that also
// checks the identity's lock-out and cooldown and counts the send limits. A
// resend whose challenge is gone gets a new challenge in the same step (a
// call does not: there is no code to call about).
func (s *Service) issue(ctx context.Context, req SendRequest, code string) (*Challenge, error) {
	now := s.clock.Now()
	id := req.ResendID
	if id == "" {
		var err error
		if id, err = newID(s.rand); err != nil {
			return nil, err
		}
	}
	jitter, err := drawJitter(s.rand, s.cfg.CooldownJitter)
	if err != nil {
		return nil, err
	}
	issue := IssueRequest{
		Challenge: Challenge{
			ID:          id,
			Subject:     req.Subject,
			SessionHash: req.SessionHash,
			PhoneHash:   s.keys.PhoneHash(req.Phone.E164),
			PhoneMasked: req.Phone.Masked,
			CodeMAC:     s.keys.CodeMAC(id, code),
			CreatedAt:   now,
			SentAt:      now,
			ExpiresAt:   now.Add(s.cfg.CodeTTL),
			MaxAttempts: s.cfg.MaxAttempts,
		},
		Resend:         req.ResendID != "",
		Voice:          req.Voice,
		MaxCalls:       s.cfg.MaxCalls,
		Now:            now,
		MaxSends:       s.cfg.MaxSends,
		CooldownBase:   s.cfg.CooldownBase,
		CooldownMax:    s.cfg.CooldownMax,
		SendWindow:     s.cfg.SendWindow,
		JitterPermille: jitter,
		Limits:         s.cfg.Limits.ChecksFrom(s.keys, req.Phone, req.Subject, req.ClientIP, req.Device),
	}
	if issue.Resend && !req.Voice {
		fallback, err := newID(s.rand)
		if err != nil {
			return nil, err
		}
		issue.FallbackID, issue.FallbackMAC = fallback, s.keys.CodeMAC(fallback, code)
	}
	c, err := s.store.Issue(ctx, issue)
	if err != nil {
		return nil, storeErr(err)
	}
	return c, nil
}

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

// verify checks a code: one atomic count-compare-consume in the store.
func (s *Service) verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	code, ok := NormalizeCode(in.Code, s.cfg.CodeLength)
	if !ok {
		return VerifyResult{}, ErrMalformedCode
	}
	res, err := s.store.Verify(ctx, VerifyRequest{
		Subject:     in.Subject,
		ChallengeID: in.ChallengeID,
		SessionHash: in.SessionHash,
		CodeMAC:     s.keys.CodeMAC(in.ChallengeID, code),
		Now:         s.clock.Now(),
		Failures:    s.cfg.Failures,
	})
	if err != nil {
		return VerifyResult{}, storeErr(err)
	}
	if res.Status == VerifyOK {
		s.breakerConverts(ctx, in.ChallengeID)
	}
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
	return c, nil
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

package otp

import (
	"context"
	"fmt"
	"time"
)

// Challenge is one step-up in progress: a code sent to one phone for one
// identity and session. The code itself is never kept, only its MAC.
type Challenge struct {
	ID          string    `json:"id"`
	Subject     string    `json:"sub"`
	SessionHash string    `json:"sid,omitempty"`
	PhoneHash   string    `json:"ph"`
	PhoneMasked string    `json:"pm"`
	CodeMAC     []byte    `json:"mac"`
	CreatedAt   time.Time `json:"created"`
	SentAt      time.Time `json:"sent"`
	ExpiresAt   time.Time `json:"exp"`
	Sends       int       `json:"sends"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"max_attempts"`
	// Calls is how many of the sends were voice calls.
	Calls int `json:"calls,omitempty"`
	// Delivery is the latest status the provider reported for the current
	// code, if any.
	Delivery DeliveryStatus `json:"delivery,omitempty"`
	// HistoryKey names the send history list of the number's prefix
	// (Keys.HistoryPrefixKey): kept with the challenge so that its
	// verification's history entry needs no read of the history. Empty
	// when no history is kept.
	HistoryKey string `json:"hk,omitempty"`
}

// Remaining is the number of verification attempts left.
func (c *Challenge) Remaining() int {
	if r := c.MaxAttempts - c.Attempts; r > 0 {
		return r
	}
	return 0
}

// IssueRequest asks the store for one send: count it against the send
// limits, and create a challenge or put a new code in an existing one (a
// resend). The identity's lock-out, its send cooldown, the challenge's own
// caps and every limit are decided together in one atomic step: the send
// passes all of them and counts against all of them, or it changes nothing.
type IssueRequest struct {
	// Challenge is the challenge to create. For a resend its ID names the
	// existing challenge, which must belong to the same subject, session and
	// phone and still have attempts left; only CodeMAC, SentAt and ExpiresAt
	// are taken from it.
	Challenge Challenge
	Resend    bool
	// FallbackID and FallbackMAC, for a resend, name a new challenge to
	// create instead when the one named is gone (expired, used up, revoked,
	// never made, or of another session or phone): Challenge with this ID
	// and code MAC. Empty: such a resend fails with ErrChallengeNotFound.
	// They let a resend after the code expired stay one store step.
	FallbackID  string
	FallbackMAC []byte
	// Voice marks a resend by phone call; it also counts against MaxCalls.
	Voice    bool
	MaxCalls int
	Now      time.Time
	// MaxSends caps the codes one challenge may receive.
	MaxSends int
	// CooldownBase is the wait after the first send; each later send of the
	// same identity doubles it, up to CooldownMax.
	CooldownBase time.Duration
	CooldownMax  time.Duration
	// JitterPermille lengthens this send's cooldown by that many
	// thousandths of it (JitteredCooldown); the service draws it at
	// random for each send (backoff.go).
	JitterPermille int
	// SendWindow is how long an identity's send count is remembered after
	// its last send (and so how long cooldowns keep growing).
	SendWindow time.Duration
	// Limits are the send limits the send counts against (SendLimits.Checks),
	// tried in order: the first one at its Max refuses the send.
	Limits []LimitCheck
	// Breaker is the conversion breaker's part of the send; nil when the
	// breaker is off. Only a BreakerStore's IssueGuarded takes it.
	Breaker *IssueBreaker
	// History is the send's history entry, sealed before the send as if it
	// went out (HistorySent, through the gateway its Sent names); nil for
	// none. Only a ResultIssuer takes it: it keeps the entry in the lists
	// and notes the gateway on the challenge only when the send is issued
	// to the challenge named (Challenge.ID, not a resend's fallback), and
	// says so (IssueResult.HistoryKept). A refused send keeps nothing.
	History *HistoryRecord
	// CooldownHistory is the entry of this send refused by the cooldown,
	// sealed ahead, which the store keeps in History's lists at History's
	// time when the cooldown refuses the send (and says so); nil for none.
	// Only with History. The cooldown is the refusal a flood's sends
	// mostly meet; the others' entries are written after the step.
	CooldownHistory []byte
}

// IssueResult is what an issue did: the challenge, the blocks the send's
// count set (it was counted and may go out: it is the last one before the
// blocks), whether it kept the request's History, and, for a send refused
// by the cooldown, a limit or the call cap, the challenge the refused
// resend named as the same step found it.
type IssueResult struct {
	Challenge *Challenge
	NewBlocks []BreakerBlock
	// HistoryKept reports that the store kept IssueRequest.History, or for
	// a send the cooldown refused, IssueRequest.CooldownHistory.
	HistoryKept bool
	// Shown, when ShownRead, is the resend's challenge (Challenge.ID) as
	// Store.Challenge would have returned it at Now, read in the refusing
	// step for the page that shows it; nil when it is gone. ShownRead is
	// false where the step did not read it (not a resend, or another
	// refusal): then only Store.Challenge can tell.
	Shown     *Challenge
	ShownRead bool
}

// ResultIssuer is a store that returns a send's whole IssueResult, and can
// keep the send's own history entry in the send's step (IssueRequest.History).
type ResultIssuer interface {
	// IssueFull is Store.Issue, or BreakerStore.IssueGuarded when
	// req.Breaker is set, returning the whole result, with the history
	// entry kept as IssueRequest.History says.
	IssueFull(ctx context.Context, req IssueRequest) (IssueResult, error)
	// KeepsHistoryInIssue reports that keeping the entry in the issue
	// saves a step (a round trip), so a service should seal it ahead.
	KeepsHistoryInIssue() bool
}

// Validate reports a request no store should act on: a fallback for what is
// not a resend, or a limit the stores cannot keep.
func (r IssueRequest) Validate() error {
	if (r.FallbackID != "" || len(r.FallbackMAC) > 0) && (!r.Resend || r.FallbackID == "" || len(r.FallbackMAC) == 0) {
		return fmt.Errorf("issue %s: a fallback needs a resend, an id and a code MAC", r.Challenge.ID)
	}
	if r.JitterPermille < 0 || r.JitterPermille > MaxCooldownJitter*jitterScale {
		return fmt.Errorf("issue %s: jitter %d thousandths, expected 0 to %d", r.Challenge.ID, r.JitterPermille, int(MaxCooldownJitter*jitterScale))
	}
	if b := r.Breaker; b != nil && (len(b.Scopes) == 0 || b.RefTTL < time.Millisecond || !b.Policy.On()) {
		return fmt.Errorf("issue %s: a breaker part needs scopes, a ref lifetime of at least 1ms and a policy that is on", r.Challenge.ID)
	}
	if h := r.History; h != nil {
		if err := h.Validate(); err != nil {
			return fmt.Errorf("issue %s: %w", r.Challenge.ID, err)
		}
	} else if r.CooldownHistory != nil {
		return fmt.Errorf("issue %s: a cooldown's history entry needs the send's", r.Challenge.ID)
	}
	return LimitRequest{Checks: r.Limits}.Validate()
}

// VerifyRequest asks the store to count an attempt, compare the code MAC in
// constant time and, on a match, consume the challenge: one atomic step.
type VerifyRequest struct {
	Subject     string
	ChallengeID string
	SessionHash string
	CodeMAC     []byte
	Now         time.Time
	Failures    FailurePolicy
	// SealedSubject (Keys.SealSubject) is what a store that keeps
	// identities hashed keeps with a lock-out instead of Subject, for
	// Locked to return. A store that holds subjects anyway may ignore it.
	SealedSubject []byte
	// BreakerConvert, set when the conversion breaker is on, asks a store
	// that is a BreakerStore to count a verified code as a conversion of
	// its challenge's sends (BreakerStore.BreakerConvert) in the same step
	// where it can, or just after it. A lost conversion only makes the
	// breaker stricter; it never fails the verification.
	BreakerConvert bool
	// History, when set, is the verification's history entry sealed
	// ahead: a store that can keeps the entry of the outcome it decides
	// in the same step, when the challenge names the same number, list
	// and gateway, and says so (VerifyResult.HistoryKept). A store that
	// cannot ignores it.
	History *VerifyHistory
}

// VerifyStatus is the outcome of one verification attempt.
type VerifyStatus int

// The outcomes of Store.Verify.
const (
	// VerifyOK: the code matched and the challenge is consumed.
	VerifyOK VerifyStatus = iota + 1
	// VerifyWrong: the code did not match; attempts remain.
	VerifyWrong
	// VerifyExhausted: the code did not match (or had no attempts left) and
	// the challenge is dead; a new code is needed.
	VerifyExhausted
	// VerifyNotFound: no live challenge of that id for this identity and
	// session (expired, used, or never made). Nothing was counted.
	VerifyNotFound
	// VerifyLocked: the identity is locked out; nothing was compared.
	VerifyLocked
)

func (s VerifyStatus) String() string {
	switch s {
	case VerifyOK:
		return "ok"
	case VerifyWrong:
		return "wrong_code"
	case VerifyExhausted:
		return "attempts_exhausted"
	case VerifyNotFound:
		return "no_challenge"
	case VerifyLocked:
		return "locked"
	}
	return fmt.Sprintf("VerifyStatus(%d)", int(s))
}

// VerifyResult reports what Store.Verify did.
type VerifyResult struct {
	Status VerifyStatus
	// Remaining attempts on the challenge after this one.
	Remaining int
	// Failures is the identity's consecutive failure count after this one.
	Failures int
	// LockedUntil is set when the identity is locked out.
	LockedUntil time.Time
	// PhoneHash, PhoneMasked and HistoryKey are the challenge's when the
	// store found it live and of the session (every status but
	// VerifyNotFound; VerifyLocked only when it was there): where the
	// code went, read in the verification's own step, for the caller to
	// tell what the code was for and for its history entry.
	PhoneHash, PhoneMasked, HistoryKey string
	// Gateway took the challenge's latest code, as the send's history
	// entry noted it (HistoryRecord.Sent); "" when none was noted.
	Gateway string
	// HistoryKept says the store kept the entry of VerifyRequest.History
	// for this outcome.
	HistoryKept bool
}

// Cooldown returns the wait after the n-th send (n >= 1): base doubled for
// each earlier send, capped at max.
func Cooldown(n int, base, max time.Duration) time.Duration {
	return doubling(n-1, base, max)
}

func doubling(k int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < k && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

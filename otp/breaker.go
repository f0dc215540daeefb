package otp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The conversion breaker (issue 15) stops SMS pumping that stays under every
// fixed cap by spreading over many numbers, accounts and addresses. Real
// people type the codes they receive; pumped numbers never do. So sends and
// verified codes are counted per population a number belongs to (its
// prefix, its range and, when foreign, its country) over a sliding window,
// and a population that has had enough sends and too few conversions gets no
// more codes for a while.

// The kinds of population a send is counted in, as they appear in a
// breaker scope ("range:+4477009"), logs and metrics.
const (
	// BreakerPrefix is the number without its last 4 digits.
	BreakerPrefix = "prefix"
	// BreakerRange is the number without its last 6 digits: pumping runs
	// spread over the prefixes of one range are judged together.
	BreakerRange = "range"
	// BreakerCountry is the number's region (or calling code); only a
	// country other than the default region is judged.
	BreakerCountry = "country"
)

// BreakerPolicy says when the breaker blocks. MinSends 0 switches it off.
type BreakerPolicy struct {
	// Window is how far back sends and conversions count, in Buckets steps
	// (the window slides by one bucket at a time).
	Window  time.Duration
	Buckets int
	// MinSends is how many sends a population must have had in the window
	// before it is judged, so that a few unlucky users never block one.
	MinSends int
	// MinConversion is the share of sends that must have been verified;
	// below it the population is blocked.
	MinConversion float64
	// Block is the first block's length; each repeat within MaxBlock of
	// the last block's end doubles it, up to MaxBlock.
	Block    time.Duration
	MaxBlock time.Duration
	// Home is the default region: its country as a whole is never judged
	// (a pumping run cannot hide in it, and a block would stop everyone).
	Home string
	// OnBlock, when set, hears of each block as it is set (for the audit
	// log, events and metrics). It runs on the send's goroutine.
	OnBlock func(BreakerBlock)
}

// DefaultBreakerPolicy judges a population after 10 sends in an hour, in six
// 10-minute buckets, and blocks it for an hour (doubling up to a day) when
// fewer than 20% of them were verified. A population of real users verifies
// far more than that; a pumping run verifies none.
func DefaultBreakerPolicy() BreakerPolicy {
	return BreakerPolicy{
		Window:        time.Hour,
		Buckets:       6,
		MinSends:      10,
		MinConversion: 0.2,
		Block:         time.Hour,
		MaxBlock:      24 * time.Hour,
	}
}

// On reports whether the breaker judges sends at all.
func (p BreakerPolicy) On() bool { return p.MinSends > 0 }

// Validate reports a setting outside its range, named as the fraud_guard
// option that sets it.
func (p BreakerPolicy) Validate() error {
	if !p.On() {
		return nil
	}
	switch {
	case p.Window < time.Minute || p.Window > 24*time.Hour:
		return fmt.Errorf("fraud_guard window %s: expected a minute to 24 hours", p.Window)
	case p.Buckets < 1 || p.Buckets > 60 || p.Window%(time.Duration(p.Buckets)*time.Millisecond) != 0:
		return fmt.Errorf("fraud_guard window %s in %d buckets: expected 1 to 60 buckets of whole milliseconds", p.Window, p.Buckets)
	case p.MinSends > 100000:
		return fmt.Errorf("fraud_guard min_sends %d: expected 1 to 100000", p.MinSends)
	case !(p.MinConversion > 0 && p.MinConversion <= 1):
		return fmt.Errorf("fraud_guard min_conversion %v: expected more than 0 and at most 1", p.MinConversion)
	case p.Block < time.Minute || p.Block > 24*time.Hour:
		return fmt.Errorf("fraud_guard block %s: expected a minute to 24 hours", p.Block)
	case p.MaxBlock < p.Block || p.MaxBlock > 7*24*time.Hour:
		return fmt.Errorf("fraud_guard longest block %s: expected %s to 7 days", p.MaxBlock, p.Block)
	}
	return nil
}

// Bucket is the length of one bucket of the window.
func (p BreakerPolicy) Bucket() time.Duration { return p.Window / time.Duration(p.Buckets) }

// BucketOf is the index of the bucket that holds now. Buckets are aligned
// to the Unix epoch, so every instance and store agrees on them.
func (p BreakerPolicy) BucketOf(now time.Time) int64 {
	return now.UnixMilli() / p.Bucket().Milliseconds()
}

// MinConversionPermille is MinConversion in thousandths, rounded up, so
// that every store judges with the same integer arithmetic.
func (p BreakerPolicy) MinConversionPermille() int {
	return int(p.MinConversion*1000 + 0.999999)
}

// Trips reports whether sends and conversions over a window call for a
// block. Every store judges with it (the Redis script mirrors it).
func (p BreakerPolicy) Trips(sends, conversions int) bool {
	return sends >= p.MinSends && conversions*1000 < p.MinConversionPermille()*sends
}

// BlockFor is the length of a block that is the level-th repeat (0 for the
// first): Block doubled level times, at most MaxBlock.
func (p BreakerPolicy) BlockFor(level int) time.Duration {
	return doubling(level, p.Block, p.MaxBlock)
}

// Scopes are the populations a send to phone is counted in: its
// prefix and range, and its country when that is not home (the default
// region, whose own traffic a pumping run cannot hide in).
func (p BreakerPolicy) Scopes(phone Phone) []string {
	out := []string{BreakerPrefix + ":" + numberPrefix(phone.E164), BreakerRange + ":" + numberRange(phone.E164)}
	if c := phoneCountry(phone); !strings.EqualFold(c, p.Home) {
		out = append(out, BreakerCountry+":"+c)
	}
	return out
}

// numberRange is an E.164 number without its last 6 digits.
func numberRange(e164 string) string {
	if n := len(e164) - 6; n > 1 {
		return e164[:n]
	}
	return e164
}

// BreakerBlock is one population whose sends are blocked.
type BreakerBlock struct {
	// Scope is kind:value ("range:+4477009", "country:GB").
	Scope string
	Until time.Time
	// Level counts the blocks before this one that it repeats (0: first).
	Level int
	// Sends and Conversions are what the window held when it was set.
	Sends, Conversions int
}

// Kind and Value split the scope.
func (b BreakerBlock) Kind() string  { k, _, _ := strings.Cut(b.Scope, ":"); return k }
func (b BreakerBlock) Value() string { _, v, _ := strings.Cut(b.Scope, ":"); return v }

// BreakerCountRequest counts one send that passed everything else.
type BreakerCountRequest struct {
	// Ref names the send's challenge: a verified code of it counts as a
	// conversion of every send it had (resends included).
	Ref    string
	Scopes []string
	Now    time.Time
	// RefTTL is how long a verification of Ref still counts (the code's
	// lifetime).
	RefTTL time.Duration
	Policy BreakerPolicy
}

// BreakerCountResult says what BreakerCount did.
type BreakerCountResult struct {
	// Blocked is set when a scope was blocked already: nothing was counted
	// and the send must not go out.
	Blocked *BreakerBlock
	// NewBlocks are the blocks this send set (it was counted and may go
	// out: it is the last one before the block).
	NewBlocks []BreakerBlock
}

// IssueBreaker is the conversion breaker's part of a send
// (IssueRequest.Breaker): the scopes it counts in, and what BreakerCount
// would be asked. The send's challenge id is the ref.
type IssueBreaker struct {
	Scopes []string
	Policy BreakerPolicy
	// RefTTL is how long a verification of the send still counts (the
	// code's lifetime).
	RefTTL time.Duration
}

// BreakerStore is the part of a store that keeps the conversion breaker's
// counts and blocks, shared by every instance. Each method is one atomic
// step, except IssueGuarded on a Redis Cluster (see there).
type BreakerStore interface {
	// IssueGuarded is Store.Issue with the breaker's part (req.Breaker,
	// which must be set) decided and counted in the same step: a send to
	// a scope blocked at req.Now fails with *BlockedError before anything
	// else is checked, and counts and changes nothing; a send that passes
	// everything is counted in every scope as BreakerCount counts it, with
	// the challenge's id as its ref, and the blocks that count set come
	// back in the result. On a Redis Cluster, whose breaker keys live in
	// a slot of their own, it runs BreakerBlocked, Issue and BreakerCount
	// as ordered steps: a block that a concurrent send set in between
	// then refuses the send after Issue (*BlockedError with the issued
	// challenge in the result), as the service did before one step.
	IssueGuarded(ctx context.Context, req IssueRequest) (IssueResult, error)
	// BreakerBlocked returns the first of scopes blocked at now.
	BreakerBlocked(ctx context.Context, scopes []string, now time.Time) (BreakerBlock, bool, error)
	// BreakerCount refuses the send if a scope is blocked at now;
	// otherwise it counts the send in every scope, remembers Ref, and
	// blocks every scope the policy now trips, for Policy.BlockFor(level)
	// where level counts the scope's blocks that ended within MaxBlock.
	BreakerCount(ctx context.Context, req BreakerCountRequest) (BreakerCountResult, error)
	// BreakerConvert counts the sends of ref as verified in their scopes,
	// once; an unknown or expired ref counts nothing.
	BreakerConvert(ctx context.Context, ref string, now time.Time) error
	// BreakerBlocks lists the blocks in force at now, the latest end first.
	BreakerBlocks(ctx context.Context, now time.Time) ([]BreakerBlock, error)
	// BreakerUnblock lifts the block on scope and forgets its counts and
	// repeats, so it starts afresh; it reports whether a block was in
	// force at now.
	BreakerUnblock(ctx context.Context, scope string, now time.Time) (bool, error)
	// BreakerStatsStore reads the window's counts (breaker_stats.go).
	BreakerStatsStore
}

// BlockedError refuses a send to a number whose population the breaker has
// blocked. The user is told only that the number can't receive codes now.
type BlockedError struct {
	Scope string
	Until time.Time
}

func (e *BlockedError) Error() string {
	return "this number can't receive codes right now (" + e.Scope + " blocked until " + e.Until.UTC().Format(time.RFC3339) + ")"
}

// ErrNoBreakerStore says the breaker is on but the store cannot keep it.
var ErrNoBreakerStore = errors.New("the store cannot keep the fraud guard's counts; expected the memory or redis store, or fraud_guard off")

package otp

import (
	"sync"
	"time"
)

// A pumping flood's sends are mostly refused by the store: a number prefix
// over its send limit, a range the fraud guard blocked, an address over its
// limit. Each refusal used to cost the send script and, on Redis, a second
// round trip for the refusal's history entry (issue 17). The service now
// remembers the store's refusal by the counter the store refused (a send
// limit's name and hashed key, or a breaker scope) and repeats it, with
// the store's error and RetryAt (Until), to every later send whose checks
// include that counter, until the store's window (or block) ends or
// RefusalHold has passed, whichever is first, with no store step.
//
// Why it is safe (SECURITY.md rules 12, 24 and 37). The store stays the
// authority: only a refusal the store gave is held, only for the counter
// it named, only within the time it said. Within that time the store
// refuses every send that counts on that counter too: a limit's window
// count only goes up until the window ends (or an operator resets it), and
// a block holds until its end (or an operator lifts it); the memo is one
// per Service, so the Max and Window it repeats are the ones its own sends
// are checked against. So the memo only ever refuses what the store would
// refuse; it never passes a send, and a send with no held counter goes to
// the store exactly as before (an outage is still a 503 for it: fail
// closed). What a repeat can change is which refusal a user sees, when the
// store would have given an earlier one first: the store checks the blocks,
// then the identity's lock-out, its resend cooldown and the challenge's
// caps, then the limits in Checks order. The memo keeps that order among
// what it holds (scopes, then limits in Checks order), but a held limit
// pre-empts a lock-out, a cooldown or a challenge cap: the user then sees
// "too many codes, retry in m minutes" instead of "wait s seconds". It is
// a refusal either way and nothing is sent or counted.
//
// Operators. ResetLimit and Unblock on this instance drop the matching
// held refusals at once; an operator acting through another instance (or
// straight on the store) is seen here within RefusalHold. ResetNumber
// resets no counter, so nothing held is dropped by it.
//
// History. A repeat leaves no history entry, only the store's refusal
// does: 2,000 repeats a second would push every real send out of the
// prefix's capped list. Repeats are still audited by the caller
// (SendResult.Repeated, logged as repeated=true) and counted in the same
// metrics as the store's refusals.

// RefusalHold is the longest a refusal is repeated without asking the
// store: the most an operator's reset made on another instance goes unseen
// here. At 2,000 refused sends a second, one in 20,000 reaches the store.
const RefusalHold = 10 * time.Second

// maxHeldRefusals bounds the memo; full, it drops the ended entries, then
// arbitrary ones, down to three quarters.
const maxHeldRefusals = 10_000

// refusalKey names a counter the store refuses by: a send limit's name
// and hashed key (LimitCheck), or a breaker scope with limit "".
type refusalKey struct {
	limit string
	key   string
}

func limitRefusal(c LimitCheck) refusalKey { return refusalKey{limit: c.Name, key: c.Key} }
func scopeRefusal(scope string) refusalKey { return refusalKey{key: scope} }

type heldRefusal struct {
	retryAt time.Time // when the store's window or block ends
	until   time.Time // when to ask the store again
}

// refusalMemo holds the store's refusals; safe for concurrent use.
type refusalMemo struct {
	mu sync.Mutex
	by map[refusalKey]heldRefusal
}

func newRefusalMemo() *refusalMemo {
	return &refusalMemo{by: make(map[refusalKey]heldRefusal)}
}

// held is the refusal of the first of scopes, then of checks, that the
// memo holds at now (nil: none); the store's order.
func (m *refusalMemo) held(scopes []string, checks []LimitCheck, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.by) == 0 {
		return nil
	}
	for _, scope := range scopes {
		if at, ok := m.lookup(scopeRefusal(scope), now); ok {
			return &BlockedError{Scope: scope, Until: at}
		}
	}
	for _, c := range checks {
		if at, ok := m.lookup(limitRefusal(c), now); ok {
			return &RateLimitError{Limit: c.Name, RetryAt: at}
		}
	}
	return nil
}

// empty reports whether the memo holds nothing (ended entries count until
// they are dropped).
func (m *refusalMemo) empty() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.by) == 0
}

// lookup is k's refusal held at now; an ended one is dropped. m.mu is held.
func (m *refusalMemo) lookup(k refusalKey, now time.Time) (time.Time, bool) {
	h, ok := m.by[k]
	if !ok {
		return time.Time{}, false
	}
	if !now.Before(h.until) {
		delete(m.by, k)
		return time.Time{}, false
	}
	return h.retryAt, true
}

// remember holds the store's refusal by k until retryAt, at most
// RefusalHold from now.
func (m *refusalMemo) remember(k refusalKey, retryAt, now time.Time) {
	until := now.Add(RefusalHold)
	if retryAt.Before(until) {
		until = retryAt
	}
	if !now.Before(until) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.by[k]; !ok && len(m.by) >= maxHeldRefusals {
		makeRoom(m.by, func(h heldRefusal) bool { return !now.Before(h.until) }, maxHeldRefusals)
	}
	m.by[k] = heldRefusal{retryAt: retryAt, until: until}
}

// forget drops the refusals held by keys (an operator's reset).
func (m *refusalMemo) forget(keys ...refusalKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.by, k)
	}
}

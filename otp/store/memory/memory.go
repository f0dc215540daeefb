// Package memory is an in-process otp.Store: the default, for one Caddy
// instance. A mutex makes every operation atomic, and a sweeper drops expired
// entries so an idle store shrinks back to nothing (phone bindings, which do
// not expire, excepted).
package memory

import (
	"bytes"
	"context"
	"crypto/subtle"
	"sort"
	"sync"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// Store keeps challenges and identity counters in memory.
type Store struct {
	clock otp.Clock

	mu         sync.Mutex
	identities map[string]*identity
	limits     map[limitID]map[windowID]int
	// bindings by subject, and the subjects bound to each phone hash.
	bindings map[string]otp.BoundPhone
	numbers  map[string]map[string]bool
	// revoked holds each revoked subject's not-before.
	revoked map[string]time.Time

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

type identity struct {
	failures    int
	failExpires time.Time
	lockedUntil time.Time

	sends       int
	sendExpires time.Time
	nextSendAt  time.Time

	challenges map[string]*otp.Challenge
}

// limitID names one send-limit counter; windowID one fixed window of it, in
// Unix milliseconds.
type (
	limitID  struct{ name, key string }
	windowID struct{ start, end int64 }
)

// New returns a Store whose sweeper runs every interval (a minute if zero)
// until Close. The clock decides what has expired.
func New(clock otp.Clock, interval time.Duration) *Store {
	if clock == nil {
		clock = otp.SystemClock{}
	}
	if interval <= 0 {
		interval = time.Minute
	}
	s := &Store{
		clock:      clock,
		identities: make(map[string]*identity),
		limits:     make(map[limitID]map[windowID]int),
		bindings:   make(map[string]otp.BoundPhone),
		numbers:    make(map[string]map[string]bool),
		revoked:    make(map[string]time.Time),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	go s.sweepEvery(interval)
	return s
}

// Close stops the sweeper. The data stays readable; Close is for shutdown.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

func (s *Store) sweepEvery(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep(s.clock.Now())
		}
	}
}

// Sweep removes every challenge and counter that has expired at now.
func (s *Store) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for subject, id := range s.identities {
		id.expire(now)
		if id.empty(now) {
			delete(s.identities, subject)
		}
	}
	nowMS := now.UnixMilli()
	for lid, windows := range s.limits {
		for w := range windows {
			if w.end <= nowMS {
				delete(windows, w)
			}
		}
		if len(windows) == 0 {
			delete(s.limits, lid)
		}
	}
}

// LimitWindows reports how many send-limit windows are held (for tests and
// metrics).
func (s *Store) LimitWindows() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, windows := range s.limits {
		n += len(windows)
	}
	return n
}

// Len reports how many identities and challenges are held (for tests and
// metrics).
func (s *Store) Len() (identities, challenges int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.identities {
		challenges += len(id.challenges)
	}
	return len(s.identities), challenges
}

// expire forgets counters and challenges whose time has passed.
func (id *identity) expire(now time.Time) {
	if !now.Before(id.failExpires) {
		id.failures = 0
		id.lockedUntil = time.Time{}
	}
	if !now.Before(id.sendExpires) {
		id.sends = 0
		id.nextSendAt = time.Time{}
	}
	for cid, c := range id.challenges {
		if !now.Before(c.ExpiresAt) {
			delete(id.challenges, cid)
		}
	}
}

func (id *identity) empty(now time.Time) bool {
	return len(id.challenges) == 0 && id.failures == 0 && id.sends == 0 && !now.Before(id.lockedUntil)
}

// get returns the subject's record with expired parts dropped, creating it if
// create is set. Callers hold s.mu.
func (s *Store) get(subject string, now time.Time, create bool) *identity {
	id := s.identities[subject]
	if id == nil {
		if !create {
			return nil
		}
		id = &identity{challenges: make(map[string]*otp.Challenge)}
		s.identities[subject] = id
	}
	id.expire(now)
	if nb, ok := s.revoked[subject]; ok {
		for cid, c := range id.challenges {
			if c.CreatedAt.Before(nb) {
				delete(id.challenges, cid)
			}
		}
	}
	return id
}

// Issue implements otp.Store.
func (s *Store) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := req.Now
	in := req.Challenge
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.get(in.Subject, now, true)
	if now.Before(id.lockedUntil) {
		return nil, &otp.LockedError{Until: id.lockedUntil}
	}
	if now.Before(id.nextSendAt) {
		return nil, &otp.CooldownError{RetryAt: id.nextSendAt}
	}
	var c *otp.Challenge
	if req.Resend {
		c = id.challenges[in.ID]
		if c == nil || c.SessionHash != in.SessionHash || c.PhoneHash != in.PhoneHash || c.Attempts >= c.MaxAttempts {
			return nil, otp.ErrChallengeNotFound
		}
		if c.Sends >= req.MaxSends {
			return nil, otp.ErrSendLimit
		}
		if req.Voice && c.Calls >= req.MaxCalls {
			return nil, otp.ErrCallLimit
		}
		c.CodeMAC = append([]byte(nil), in.CodeMAC...)
		c.SentAt = in.SentAt
		c.ExpiresAt = in.ExpiresAt
		c.Sends++
		c.Delivery = ""
		if req.Voice {
			c.Calls++
		}
	} else {
		c = cloneChallenge(&in)
		c.Sends = 1
		c.Attempts = 0
		c.Calls = 0
		c.Delivery = ""
		if req.Voice {
			c.Calls = 1
		}
		id.challenges[c.ID] = c
	}
	id.sends++
	id.sendExpires = now.Add(req.SendWindow)
	id.nextSendAt = now.Add(otp.Cooldown(id.sends, req.CooldownBase, req.CooldownMax))
	return cloneChallenge(c), nil
}

// Challenge implements otp.Store.
func (s *Store) Challenge(ctx context.Context, subject, cid string, now time.Time) (*otp.Challenge, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.get(subject, now, false)
	if id == nil || id.challenges[cid] == nil {
		return nil, otp.ErrChallengeNotFound
	}
	return cloneChallenge(id.challenges[cid]), nil
}

// Verify implements otp.Store: count, compare in constant time, consume.
func (s *Store) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	if err := ctx.Err(); err != nil {
		return otp.VerifyResult{}, err
	}
	now := req.Now
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.get(req.Subject, now, false)
	if id == nil {
		return otp.VerifyResult{Status: otp.VerifyNotFound}, nil
	}
	if now.Before(id.lockedUntil) {
		return otp.VerifyResult{Status: otp.VerifyLocked, Failures: id.failures, LockedUntil: id.lockedUntil}, nil
	}
	c := id.challenges[req.ChallengeID]
	if c == nil || c.SessionHash != req.SessionHash {
		return otp.VerifyResult{Status: otp.VerifyNotFound, Failures: id.failures}, nil
	}
	if c.Attempts >= c.MaxAttempts {
		delete(id.challenges, c.ID)
		return otp.VerifyResult{Status: otp.VerifyExhausted, Failures: id.failures}, nil
	}
	c.Attempts++
	if subtle.ConstantTimeCompare(req.CodeMAC, c.CodeMAC) == 1 {
		delete(id.challenges, c.ID)
		id.failures, id.failExpires, id.lockedUntil = 0, time.Time{}, time.Time{}
		id.sends, id.sendExpires, id.nextSendAt = 0, time.Time{}, time.Time{}
		return otp.VerifyResult{Status: otp.VerifyOK, Remaining: c.Remaining()}, nil
	}
	id.failures++
	id.failExpires = now.Add(req.Failures.Window)
	if d := req.Failures.LockDelay(id.failures); d > 0 {
		id.lockedUntil = now.Add(d)
	}
	res := otp.VerifyResult{Status: otp.VerifyWrong, Remaining: c.Remaining(), Failures: id.failures, LockedUntil: id.lockedUntil}
	if c.Attempts >= c.MaxAttempts {
		delete(id.challenges, c.ID)
		res.Status = otp.VerifyExhausted
	}
	return res, nil
}

// Identity implements otp.Store.
func (s *Store) Identity(ctx context.Context, subject string, now time.Time) (otp.IdentityState, error) {
	if err := ctx.Err(); err != nil {
		return otp.IdentityState{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.get(subject, now, false)
	if id == nil {
		return otp.IdentityState{}, nil
	}
	return otp.IdentityState{
		Failures:    id.failures,
		LockedUntil: id.lockedUntil,
		Sends:       id.sends,
		NextSendAt:  id.nextSendAt,
	}, nil
}

// SetDelivery implements otp.Store.
func (s *Store) SetDelivery(ctx context.Context, subject, cid string, status otp.DeliveryStatus, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.get(subject, now, false)
	if id == nil || id.challenges[cid] == nil {
		return nil
	}
	c := id.challenges[cid]
	if status.Rank() > c.Delivery.Rank() {
		c.Delivery = status
	}
	return nil
}

// Limit implements otp.Store. It raises the counters in request order and,
// when one refuses, lowers those it raised, all under the mutex, so it
// behaves as the Redis store does without its window of doubt.
func (s *Store) Limit(ctx context.Context, req otp.LimitRequest) (otp.LimitResult, error) {
	if err := ctx.Err(); err != nil {
		return otp.LimitResult{}, err
	}
	if err := req.Validate(); err != nil {
		return otp.LimitResult{}, err
	}
	type raised struct {
		lid limitID
		wid windowID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	done := make([]raised, 0, len(req.Checks))
	for _, c := range req.Checks {
		start, end := c.Bounds(req.Now)
		lid := limitID{c.Name, c.Key}
		wid := windowID{start.UnixMilli(), end.UnixMilli()}
		if s.limits[lid][wid] >= c.Max {
			for _, r := range done {
				s.lower(r.lid, r.wid)
			}
			return otp.LimitResult{Refused: c.Name, RetryAt: end}, nil
		}
		if s.limits[lid] == nil {
			s.limits[lid] = make(map[windowID]int)
		}
		s.limits[lid][wid]++
		done = append(done, raised{lid, wid})
	}
	return otp.LimitResult{Allowed: true}, nil
}

// lower undoes one raise of a counter. Callers hold s.mu.
func (s *Store) lower(lid limitID, wid windowID) {
	windows := s.limits[lid]
	if windows[wid]--; windows[wid] <= 0 {
		delete(windows, wid)
	}
	if len(windows) == 0 {
		delete(s.limits, lid)
	}
}

// ResetLimit implements otp.Store.
func (s *Store) ResetLimit(ctx context.Context, name, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.limits, limitID{name, key})
	return nil
}

// BindPhone implements otp.Store.
func (s *Store) BindPhone(ctx context.Context, req otp.BindRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	holders := s.numbers[req.PhoneHash]
	if !holders[req.Subject] && len(holders) >= req.MaxIdentitiesPerNumber {
		return otp.ErrNumberTaken
	}
	s.unbind(req.Subject)
	holders = s.numbers[req.PhoneHash]
	if holders == nil {
		holders = make(map[string]bool)
		s.numbers[req.PhoneHash] = holders
	}
	holders[req.Subject] = true
	s.bindings[req.Subject] = otp.BoundPhone{
		PhoneHash:   req.PhoneHash,
		PhoneSealed: bytes.Clone(req.PhoneSealed),
		PhoneMasked: req.PhoneMasked,
		BoundAt:     req.Now,
	}
	return nil
}

// BoundPhone implements otp.Store.
func (s *Store) BoundPhone(ctx context.Context, subject string) (otp.BoundPhone, error) {
	if err := ctx.Err(); err != nil {
		return otp.BoundPhone{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bindings[subject]
	if !ok {
		return otp.BoundPhone{}, otp.ErrNoBoundPhone
	}
	b.PhoneSealed = bytes.Clone(b.PhoneSealed)
	return b, nil
}

// UnbindPhone implements otp.Store.
func (s *Store) UnbindPhone(ctx context.Context, subject string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unbind(subject)
	return nil
}

// unbind drops the subject's binding and its place in its number's index.
// Callers hold s.mu.
func (s *Store) unbind(subject string) {
	b, ok := s.bindings[subject]
	if !ok {
		return
	}
	delete(s.bindings, subject)
	delete(s.numbers[b.PhoneHash], subject)
	if len(s.numbers[b.PhoneHash]) == 0 {
		delete(s.numbers, b.PhoneHash)
	}
}

// Revoke implements otp.Store.
func (s *Store) Revoke(ctx context.Context, subject string, notBefore time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if notBefore.After(s.revoked[subject]) {
		s.revoked[subject] = notBefore
	}
	return nil
}

// NotBefore implements otp.Store.
func (s *Store) NotBefore(ctx context.Context, subject string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked[subject], nil
}

// Unlock implements otp.Store.
func (s *Store) Unlock(ctx context.Context, subject string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := s.identities[subject]; id != nil {
		id.failures, id.failExpires, id.lockedUntil = 0, time.Time{}, time.Time{}
	}
	return nil
}

// Locked implements otp.Store.
func (s *Store) Locked(ctx context.Context, now time.Time, max int) ([]otp.LockedIdentity, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	var all []otp.LockedIdentity
	for subject, id := range s.identities {
		if now.Before(id.lockedUntil) && now.Before(id.failExpires) {
			all = append(all, otp.LockedIdentity{Subject: subject, Failures: id.failures, Until: id.lockedUntil})
		}
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if !all[i].Until.Equal(all[j].Until) {
			return all[i].Until.After(all[j].Until)
		}
		return all[i].Subject < all[j].Subject
	})
	total := len(all)
	if max >= 0 && len(all) > max {
		all = all[:max]
	}
	return all, total, nil
}

// LimitCount implements otp.Store.
func (s *Store) LimitCount(ctx context.Context, check otp.LimitCheck, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	start, end := check.Bounds(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits[limitID{check.Name, check.Key}][windowID{start.UnixMilli(), end.UnixMilli()}], nil
}

func cloneChallenge(c *otp.Challenge) *otp.Challenge {
	out := *c
	out.CodeMAC = append([]byte(nil), c.CodeMAC...)
	return &out
}

var _ otp.Store = (*Store)(nil)

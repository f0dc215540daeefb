// Package memory is an in-process otp.Store: the default, for one Caddy
// instance. Every operation is atomic under a mutex: an identity's
// challenges, counters and revocation sit in one of shardCount shards, each
// with its own mutex, so different identities do not wait for one another;
// the send limits have one mutex (a send spans several counters and must
// raise all or none), and the phone bindings another (a bind spans the
// identity's binding and the number's index), and the phone-source answers
// (lookups.go) another, and the conversion breaker (breaker.go) another.
// A sweeper drops expired entries so an idle store shrinks back to nothing
// (phone bindings and revocations, which do not expire, excepted).
package memory

import (
	"context"
	"crypto/subtle"
	"hash/maphash"
	"sort"
	"sync"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// shardCount is how many locks the identities are spread over. More shards
// than cores keeps two busy identities from sharing a lock most of the time,
// and many keeps the sweeper's copy of one shard's subjects short (a
// million identities are about 4,000 a shard).
const shardCount = 256

// Store keeps challenges, counters, send limits and bindings in memory.
type Store struct {
	clock  otp.Clock
	seed   maphash.Seed
	shards [shardCount]shard

	limitsMu sync.Mutex
	limits   map[limitWindow]int

	bindMu sync.Mutex
	// bindings by subject, and the subjects bound to each phone hash.
	bindings map[string]otp.BoundPhone
	numbers  map[string]map[string]bool

	// lookups holds phone-source answers (lookups.go).
	lookups lookupCache
	// replays holds the forms kept for a step-up (replays.go), in the
	// same shape as the lookups.
	replays lookupCache

	// claims holds the single uses of CAPTCHA answers (once.go).
	claims onceClaims

	// breaker holds the conversion breaker's counts and blocks (breaker.go).
	breaker breaker

	// history holds the send history (history.go).
	history historyLists

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// shard holds the identities whose subject hashes to it.
type shard struct {
	mu         sync.Mutex
	identities map[string]*identity
	// revoked holds each revoked subject's not-before. It outlives the
	// identity's record, which the sweeper drops once it is idle.
	revoked map[string]time.Time
	// Pad to a cache line, so one shard's lock traffic does not slow its
	// neighbours.
	_ [40]byte
}

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
		clock:    clock,
		seed:     maphash.MakeSeed(),
		limits:   make(map[limitWindow]int),
		bindings: make(map[string]otp.BoundPhone),
		numbers:  make(map[string]map[string]bool),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range s.shards {
		s.shards[i].identities = make(map[string]*identity)
		s.shards[i].revoked = make(map[string]time.Time)
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

// Len reports how many identities and challenges are held (for tests and
// metrics).
func (s *Store) Len() (identities, challenges int) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, id := range sh.identities {
			challenges += len(id.challenges)
		}
		identities += len(sh.identities)
		sh.mu.Unlock()
	}
	return identities, challenges
}

func (s *Store) shard(subject string) *shard {
	return &s.shards[maphash.String(s.seed, subject)%shardCount]
}

// live returns the subject's record with its expired and revoked
// challenges dropped, or nil. Callers hold sh.mu.
func (sh *shard) live(subject string, now int64) *identity {
	id := sh.identities[subject]
	if id == nil {
		return nil
	}
	id.expire(now)
	if nb, ok := sh.revoked[subject]; ok {
		id.revoke(nanos(nb))
	}
	return id
}

// Challenge implements otp.Store.
func (s *Store) Challenge(ctx context.Context, subject, cid string, now time.Time) (*otp.Challenge, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	id := sh.live(subject, nanos(now))
	if id == nil {
		return nil, otp.ErrChallengeNotFound
	}
	i := id.find(cid)
	if i < 0 {
		return nil, otp.ErrChallengeNotFound
	}
	return id.challenges[i].export(subject, now.Location()), nil
}

// Verify implements otp.Store: count, compare in constant time, consume.
func (s *Store) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	if err := ctx.Err(); err != nil {
		return otp.VerifyResult{}, err
	}
	now, loc := nanos(req.Now), req.Now.Location()
	sh := s.shard(req.Subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	id := sh.live(req.Subject, now)
	if id == nil {
		return otp.VerifyResult{Status: otp.VerifyNotFound}, nil
	}
	i := id.find(req.ChallengeID)
	if i >= 0 && id.challenges[i].sessionHash != req.SessionHash {
		i = -1
	}
	var sent otp.VerifyResult
	if i >= 0 {
		c := &id.challenges[i]
		sent.PhoneHash, sent.PhoneMasked, sent.HistoryKey, sent.Gateway = c.phoneHash, c.phoneMasked, c.historyKey, c.gateway
	}
	if now < id.lockedUntil {
		sent.Status, sent.Failures, sent.LockedUntil = otp.VerifyLocked, int(id.failures), instant(id.lockedUntil, loc)
		return sent, nil
	}
	if i < 0 {
		return otp.VerifyResult{Status: otp.VerifyNotFound, Failures: int(id.failures)}, nil
	}
	c := &id.challenges[i]
	if c.attempts >= c.maxAttempts {
		id.remove(i)
		sent.Status, sent.Failures = otp.VerifyExhausted, int(id.failures)
		return sent, nil
	}
	c.attempts++
	if subtle.ConstantTimeCompare(req.CodeMAC, c.mac[:c.macLen]) == 1 {
		sent.Status, sent.Remaining = otp.VerifyOK, c.remaining()
		id.remove(i)
		id.resetFailures()
		id.resetSends()
		if req.BreakerConvert {
			// The breaker's lock after the identity's, as in Issue: the
			// conversion is part of the verification's step.
			s.breaker.mu.Lock()
			s.breaker.convert(req.ChallengeID, req.Now)
			s.breaker.mu.Unlock()
		}
		return sent, nil
	}
	inc(&id.failures)
	id.failExpires = nanos(req.Now.Add(req.Failures.Window))
	if d := req.Failures.LockDelay(int(id.failures)); d > 0 {
		id.lockedUntil = nanos(req.Now.Add(d))
		// The count lasts as long as the lock (the hard lock outlives
		// the window), so waiting a lock out never resets it.
		id.failExpires = max(id.failExpires, id.lockedUntil)
	}
	res := sent
	res.Status, res.Remaining, res.Failures, res.LockedUntil = otp.VerifyWrong, c.remaining(), int(id.failures), instant(id.lockedUntil, loc)
	if c.attempts >= c.maxAttempts {
		id.remove(i)
		res.Status = otp.VerifyExhausted
	}
	return res, nil
}

// Identity implements otp.Store.
func (s *Store) Identity(ctx context.Context, subject string, now time.Time) (otp.IdentityState, error) {
	if err := ctx.Err(); err != nil {
		return otp.IdentityState{}, err
	}
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	id := sh.live(subject, nanos(now))
	if id == nil {
		return otp.IdentityState{}, nil
	}
	loc := now.Location()
	return otp.IdentityState{
		Failures:    int(id.failures),
		LockedUntil: instant(id.lockedUntil, loc),
		Sends:       int(id.sends),
		NextSendAt:  instant(id.nextSendAt, loc),
	}, nil
}

// SetDelivery implements otp.Store.
func (s *Store) SetDelivery(ctx context.Context, subject, cid string, status otp.DeliveryStatus, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	id := sh.live(subject, nanos(now))
	if id == nil {
		return nil
	}
	i := id.find(cid)
	if i < 0 {
		return nil
	}
	c := &id.challenges[i]
	if d, ok := deliveryIndex(status); ok && status.Rank() > deliveries[c.delivery].Rank() {
		c.delivery = d
	}
	return nil
}

// Revoke implements otp.Store.
func (s *Store) Revoke(ctx context.Context, subject string, notBefore time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if notBefore.After(sh.revoked[subject]) {
		sh.revoked[subject] = notBefore
	}
	return nil
}

// NotBefore implements otp.Store.
func (s *Store) NotBefore(ctx context.Context, subject string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.revoked[subject], nil
}

// Unlock implements otp.Store.
func (s *Store) Unlock(ctx context.Context, subject string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if id := sh.identities[subject]; id != nil {
		id.resetFailures()
	}
	return nil
}

// Locked implements otp.Store. It reads one shard at a time: an identity
// locked or unlocked meanwhile may or may not be listed, as with any list
// taken while the store is in use.
func (s *Store) Locked(ctx context.Context, now time.Time, max int) ([]otp.LockedIdentity, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	n, loc := nanos(now), now.Location()
	var all []otp.LockedIdentity
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for subject, id := range sh.identities {
			if n < id.lockedUntil && n < id.failExpires {
				all = append(all, otp.LockedIdentity{Subject: subject, Failures: int(id.failures), Until: instant(id.lockedUntil, loc)})
			}
		}
		sh.mu.Unlock()
	}
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

var _ otp.Store = (*Store)(nil)

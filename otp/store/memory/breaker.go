package memory

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// maxBreakerRefs caps the sends remembered for a later conversion. Past it a
// send is still counted but its conversion is not, which only makes the
// breaker stricter; a flood cannot grow the store without bound.
const maxBreakerRefs = 100_000

// breaker holds the conversion breaker (otp.BreakerStore) under one mutex:
// a send spans several scopes and is counted in all of them or none.
type breaker struct {
	mu     sync.Mutex
	scopes map[string]*breakerScope
	refs   map[string]breakerRef
}

// breakerScope is one population's counts per bucket, its block and how
// many blocks it has had lately.
type breakerScope struct {
	sends, conversions map[int64]int
	// window is the bucket count of the policy that last counted here, so
	// the sweeper knows when the counts have all slid out.
	bucket time.Duration
	window int
	until  int64 // block end, nanoseconds
	level  int   // blocks so far that repeat
	forget int64 // when level is forgotten
	last   breakerTally
}

type breakerTally struct{ sends, conversions int }

type breakerRef struct {
	sends   int
	scopes  []string
	expires int64
}

func (b *breaker) scope(name string) *breakerScope {
	if b.scopes == nil {
		b.scopes = make(map[string]*breakerScope)
		b.refs = make(map[string]breakerRef)
	}
	sc := b.scopes[name]
	if sc == nil {
		sc = &breakerScope{sends: map[int64]int{}, conversions: map[int64]int{}}
		b.scopes[name] = sc
	}
	return sc
}

// blocked returns the first of scopes blocked at now. Callers hold b.mu.
func (b *breaker) blocked(scopes []string, now int64) (otp.BreakerBlock, bool) {
	for _, name := range scopes {
		if sc := b.scopes[name]; sc != nil && now < sc.until {
			return sc.block(name), true
		}
	}
	return otp.BreakerBlock{}, false
}

func (sc *breakerScope) block(name string) otp.BreakerBlock {
	return otp.BreakerBlock{Scope: name, Until: time.Unix(0, sc.until).UTC(), Level: sc.level - 1,
		Sends: sc.last.sends, Conversions: sc.last.conversions}
}

// tally sums the buckets of the window ending with bucket now.
func (sc *breakerScope) tally(now int64, buckets int) breakerTally {
	var t breakerTally
	for i := now - int64(buckets) + 1; i <= now; i++ {
		t.sends += sc.sends[i]
		t.conversions += sc.conversions[i]
	}
	return t
}

// BreakerBlocked implements otp.BreakerStore.
func (s *Store) BreakerBlocked(ctx context.Context, scopes []string, now time.Time) (otp.BreakerBlock, bool, error) {
	if err := ctx.Err(); err != nil {
		return otp.BreakerBlock{}, false, err
	}
	b := &s.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	blk, ok := b.blocked(scopes, nanos(now))
	return blk, ok, nil
}

// BreakerCount implements otp.BreakerStore.
func (s *Store) BreakerCount(ctx context.Context, req otp.BreakerCountRequest) (otp.BreakerCountResult, error) {
	if err := ctx.Err(); err != nil {
		return otp.BreakerCountResult{}, err
	}
	b := &s.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	if blk, ok := b.blocked(req.Scopes, nanos(req.Now)); ok {
		return otp.BreakerCountResult{Blocked: &blk}, nil
	}
	return otp.BreakerCountResult{NewBlocks: b.count(req)}, nil
}

// count counts one send in every scope of req, blocks those the policy
// now trips and remembers the ref; it returns the blocks it set. Callers
// hold b.mu and have found no scope blocked.
func (b *breaker) count(req otp.BreakerCountRequest) []otp.BreakerBlock {
	p := req.Policy
	now, bucket := nanos(req.Now), p.BucketOf(req.Now)
	var blocks []otp.BreakerBlock
	for _, name := range req.Scopes {
		sc := b.scope(name)
		sc.bucket, sc.window = p.Bucket(), p.Buckets
		sc.sends[bucket]++
		t := sc.tally(bucket, p.Buckets)
		if !p.Trips(t.sends, t.conversions) {
			continue
		}
		if now >= sc.forget {
			sc.level = 0
		}
		sc.until = nanos(req.Now.Add(p.BlockFor(sc.level)))
		sc.level++
		sc.forget = sc.until + int64(p.MaxBlock)
		sc.last = t
		blocks = append(blocks, sc.block(name))
	}
	b.remember(req, now)
	return blocks
}

// remember keeps the send's ref for a conversion. Callers hold b.mu.
func (b *breaker) remember(req otp.BreakerCountRequest, now int64) {
	r, ok := b.refs[req.Ref]
	if !ok && len(b.refs) >= maxBreakerRefs {
		return
	}
	if !ok || now >= r.expires {
		r = breakerRef{}
	}
	r.sends++
	r.scopes = append([]string(nil), req.Scopes...)
	r.expires = nanos(time.Unix(0, now).Add(req.RefTTL))
	b.refs[req.Ref] = r
}

// BreakerConvert implements otp.BreakerStore.
func (s *Store) BreakerConvert(ctx context.Context, ref string, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := &s.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	b.convert(ref, now)
	return nil
}

// convert counts the sends of ref as verified, once. Callers hold b.mu.
func (b *breaker) convert(ref string, now time.Time) {
	r, ok := b.refs[ref]
	if !ok {
		return
	}
	delete(b.refs, ref)
	if nanos(now) >= r.expires {
		return
	}
	for _, name := range r.scopes {
		sc := b.scope(name)
		if sc.bucket > 0 {
			sc.conversions[now.UnixMilli()/sc.bucket.Milliseconds()] += r.sends
		}
	}
}

// BreakerBlocks implements otp.BreakerStore.
func (s *Store) BreakerBlocks(ctx context.Context, now time.Time) ([]otp.BreakerBlock, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := &s.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []otp.BreakerBlock
	for name, sc := range b.scopes {
		if nanos(now) < sc.until {
			out = append(out, sc.block(name))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Until.Equal(out[j].Until) {
			return out[i].Until.After(out[j].Until)
		}
		return out[i].Scope < out[j].Scope
	})
	return out, nil
}

// BreakerUnblock implements otp.BreakerStore.
func (s *Store) BreakerUnblock(ctx context.Context, scope string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b := &s.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	sc, ok := b.scopes[scope]
	if !ok {
		return false, nil
	}
	delete(b.scopes, scope)
	return nanos(now) < sc.until, nil
}

// sweepBreaker drops the scopes whose counts have slid out of their window
// and whose block and repeats are over, and the refs past their lifetime.
func (s *Store) sweepBreaker(now time.Time) {
	b := &s.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	n := nanos(now)
	for name, sc := range b.scopes {
		if sc.bucket > 0 {
			oldest := now.UnixMilli()/sc.bucket.Milliseconds() - int64(sc.window) + 1
			for i := range sc.sends {
				if i < oldest {
					delete(sc.sends, i)
				}
			}
			for i := range sc.conversions {
				if i < oldest {
					delete(sc.conversions, i)
				}
			}
		}
		if len(sc.sends) == 0 && len(sc.conversions) == 0 && n >= sc.until && n >= sc.forget {
			delete(b.scopes, name)
		}
	}
	for k, r := range b.refs {
		if n >= r.expires {
			delete(b.refs, k)
		}
	}
}

package memory

import (
	"context"
	"sync"
	"time"
)

// maxLookups caps the phone-source answers held at once. Past it an answer
// is simply not kept (the next step-up asks the source again), so a flood
// of identities cannot grow the store without bound.
const maxLookups = 100_000

// lookupCache holds phone-source answers (otp.LookupCache): opaque keys and
// sealed values, each with its expiry.
type lookupCache struct {
	mu      sync.Mutex
	entries map[string]lookupEntry
}

type lookupEntry struct {
	value   []byte
	expires int64
}

// CachedLookup implements otp.LookupCache.
func (s *Store) CachedLookup(ctx context.Context, key string, now time.Time) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	c := &s.lookups
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || nanos(now) >= e.expires {
		return nil, false, nil
	}
	return append([]byte(nil), e.value...), true, nil
}

// CacheLookup implements otp.LookupCache.
func (s *Store) CacheLookup(ctx context.Context, key string, value []byte, now time.Time, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &s.lookups
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]lookupEntry)
	}
	if _, replaces := c.entries[key]; !replaces && len(c.entries) >= maxLookups {
		c.expire(nanos(now))
		if len(c.entries) >= maxLookups {
			return nil
		}
	}
	c.entries[key] = lookupEntry{value: append([]byte(nil), value...), expires: nanos(now.Add(ttl))}
	return nil
}

// expire drops the answers that have expired at now. Callers hold c.mu.
func (c *lookupCache) expire(now int64) {
	for k, e := range c.entries {
		if now >= e.expires {
			delete(c.entries, k)
		}
	}
}

func (s *Store) sweepLookups(now time.Time) {
	c := &s.lookups
	c.mu.Lock()
	c.expire(nanos(now))
	c.mu.Unlock()
}

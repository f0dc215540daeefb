package memory

import (
	"context"
	"errors"
	"sync"
	"time"
)

// maxClaims caps the single-use claims held at once. Unlike a lookup, a
// claim that can't be kept fails: an answer whose use was not recorded
// could be replayed.
const maxClaims = 200_000

// errClaimsFull refuses a claim when maxClaims unexpired claims are held.
var errClaimsFull = errors.New("memory store: too many single-use claims held; try again later")

// onceClaims holds otp.OnceStore claims: keys and their expiry.
type onceClaims struct {
	mu      sync.Mutex
	expires map[string]int64
}

// ClaimOnce implements otp.OnceStore.
func (s *Store) ClaimOnce(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	c := &s.claims
	c.mu.Lock()
	defer c.mu.Unlock()
	n := nanos(now)
	if exp, ok := c.expires[key]; ok && n < exp {
		return false, nil
	}
	if c.expires == nil {
		c.expires = make(map[string]int64)
	}
	if len(c.expires) >= maxClaims {
		c.expire(n)
		if len(c.expires) >= maxClaims {
			return false, errClaimsFull
		}
	}
	c.expires[key] = nanos(now.Add(ttl))
	return true, nil
}

// expire drops the claims that have expired at now. Callers hold c.mu.
func (c *onceClaims) expire(now int64) {
	for k, exp := range c.expires {
		if now >= exp {
			delete(c.expires, k)
		}
	}
}

func (s *Store) sweepClaims(now time.Time) {
	c := &s.claims
	c.mu.Lock()
	c.expire(nanos(now))
	c.mu.Unlock()
}

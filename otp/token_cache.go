package otp

import "time"

// remember caches a verified token. A full cache drops one entry per
// insert: an expired one if one of the first evictScan it iterates has
// expired, else the first (Go's map iteration starts at random, so that one
// is arbitrary). A stream of new valid tokens thus costs a bounded amount
// of memory, and no insert stalls to sweep the whole cache (issue 17: with
// 10,000 entries a sweep held the lock about a millisecond).
func (t *Tokens) remember(token string, v Verified) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.cache[token]; !ok && len(t.cache) >= t.cfg.CacheSize {
		t.evictOne(t.cfg.Clock.Now())
	}
	t.cache[token] = v
}

// evictOne drops one cached token, preferring an expired one among the
// first evictScan. t.mu must be held.
func (t *Tokens) evictOne(now time.Time) {
	evictOne(t.cache, func(e Verified) bool { return !now.Before(e.Expires) })
}

// CacheLen reports how many verified tokens are remembered.
func (t *Tokens) CacheLen() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.cache)
}

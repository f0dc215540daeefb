package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// Default and longest cache lifetimes. An answer is kept for minutes, not
// hours: a number the application changes must reach the step-up soon.
const (
	DefaultFoundTTL    = 5 * time.Minute
	DefaultNotFoundTTL = time.Minute
	MaxCacheTTL        = time.Hour
)

// CacheConfig says where and how long a Cache keeps answers.
type CacheConfig struct {
	// Store keeps the answers, sealed: the memory or the Redis store, so
	// that Caddy instances sharing a Redis share what they looked up.
	Store otp.LookupCache
	// Keys hash identities into store keys and seal the answers.
	Keys *otp.Keys
	// Clock tells the cache the time; the system clock when nil.
	Clock otp.Clock
	// FoundTTL keeps a number (default 5 minutes), NotFoundTTL the news
	// that no source knows the identity (default 1 minute).
	FoundTTL    time.Duration
	NotFoundTTL time.Duration
}

// Cache answers from the store when it can and asks its chain when it
// must. Failures are never cached: the next lookup asks again.
type Cache struct {
	chain              *Chain
	store              otp.LookupCache
	keys               *otp.Keys
	clock              otp.Clock
	foundTTL, notFound time.Duration
}

// NewCache checks cfg and returns a cache in front of chain.
func NewCache(chain *Chain, cfg CacheConfig) (*Cache, error) {
	if chain == nil || cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("phone source cache: a chain, a store and keys are required")
	}
	found, err := cacheTTL("found", cfg.FoundTTL, DefaultFoundTTL)
	if err != nil {
		return nil, err
	}
	notFound, err := cacheTTL("not found", cfg.NotFoundTTL, DefaultNotFoundTTL)
	if err != nil {
		return nil, err
	}
	clock := cfg.Clock
	if clock == nil {
		clock = otp.SystemClock{}
	}
	return &Cache{chain: chain, store: cfg.Store, keys: cfg.Keys, clock: clock, foundTTL: found, notFound: notFound}, nil
}

func cacheTTL(what string, d, def time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return def, nil
	case d < time.Second || d > MaxCacheTTL:
		return 0, fmt.Errorf("phone source cache: %s lifetime %s: expected a duration from 1s to %s", what, d, MaxCacheTTL)
	}
	return d, nil
}

// cachedAnswer is an Answer as it is sealed into the store.
type cachedAnswer struct {
	Found  bool   `json:"f"`
	Raw    string `json:"r,omitempty"`
	Source string `json:"s,omitempty"`
}

// Find returns the cached answer for identity, or asks the chain and keeps
// its answer. A store that cannot be read or written fails the lookup
// (wrapping otp.ErrStoreUnavailable), as the store failing fails every
// other step of a step-up: closed.
func (c *Cache) Find(ctx context.Context, identity string) (Answer, error) {
	if err := CheckIdentity(identity); err != nil {
		return Answer{}, err
	}
	key := c.keys.LookupKey(c.chain.Scope(), identity)
	now := c.clock.Now()
	sealed, ok, err := c.store.CachedLookup(ctx, key, now)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: read cached phone lookup: %w", otp.ErrStoreUnavailable, err)
	}
	if ok {
		if a, ok := c.open(key, sealed); ok {
			return a, nil
		}
		// An answer sealed under another key (rotated) or altered in the
		// store: ask again, and replace it.
	}
	a, err := c.chain.Find(ctx, identity)
	if err != nil {
		return Answer{}, err
	}
	if err := c.keep(ctx, key, a, now); err != nil {
		return Answer{}, fmt.Errorf("%w: cache phone lookup: %w", otp.ErrStoreUnavailable, err)
	}
	return a, nil
}

func (c *Cache) open(key string, sealed []byte) (Answer, bool) {
	plain, err := c.keys.OpenLookup(key, sealed)
	if err != nil {
		return Answer{}, false
	}
	var ca cachedAnswer
	if json.Unmarshal(plain, &ca) != nil || ca.Found != (ca.Raw != "") {
		return Answer{}, false
	}
	return Answer{Raw: ca.Raw, Found: ca.Found, Source: ca.Source, Cached: true}, true
}

func (c *Cache) keep(ctx context.Context, key string, a Answer, now time.Time) error {
	plain, err := json.Marshal(cachedAnswer{Found: a.Found, Raw: a.Raw, Source: a.Source})
	if err != nil {
		return err
	}
	sealed, err := c.keys.SealLookup(key, plain)
	if err != nil {
		return err
	}
	ttl := c.notFound
	if a.Found {
		ttl = c.foundTTL
	}
	return c.store.CacheLookup(ctx, key, sealed, now, ttl)
}

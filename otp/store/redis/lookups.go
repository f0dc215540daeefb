package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// lookupKey is where one phone-source answer is kept. key is already a
// keyed hash of the identity (otp.Keys.LookupKey); each answer is a single
// key of its own, so answers spread over a cluster.
func (s *Store) lookupKey(key string) string {
	return s.prefix + "lookup:" + key
}

// CachedLookup implements otp.LookupCache. Redis expires the answer, so now
// is not needed.
func (s *Store) CachedLookup(ctx context.Context, key string, _ time.Time) ([]byte, bool, error) {
	v, err := s.client.Get(ctx, s.lookupKey(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis cached lookup: %w", err)
	}
	return v, true, nil
}

// CacheLookup implements otp.LookupCache.
func (s *Store) CacheLookup(ctx context.Context, key string, value []byte, _ time.Time, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("redis cache lookup: lifetime %s, expected at least 1ms", ttl)
	}
	if err := s.client.Set(ctx, s.lookupKey(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("redis cache lookup: %w", err)
	}
	return nil
}

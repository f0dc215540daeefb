package redis

import (
	"context"
	"fmt"
	"time"
)

// ClaimOnce implements otp.OnceStore with one SET NX: atomic on one node,
// and each claim is a key of its own, so claims spread over a cluster.
// Redis expires the claim, so now is not needed.
func (s *Store) ClaimOnce(ctx context.Context, key string, _ time.Time, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("redis claim: lifetime %s, expected at least 1ms", ttl)
	}
	ok, err := s.client.SetNX(ctx, s.prefix+"once:"+key, "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis claim: %w", err)
	}
	return ok, nil
}

package redis_test

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

func TestOnceStoreConformanceOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	storetest.RunOnceStore(t, func(t *testing.T) otp.OnceStore { return redis.New(client, uniquePrefix()) })
}

// TestClaimKeyExpiresInRedis: the claim is one key under the store's
// prefix, which Redis itself expires after the lifetime given.
func TestClaimKeyExpiresInRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	store := redis.New(client, "once-test:")
	if ok, err := store.ClaimOnce(t.Context(), "k", time.Now(), time.Minute); err != nil || !ok {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	ttl, err := client.PTTL(t.Context(), "once-test:once:k").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL of the claim: %s, %v; want at most a minute", ttl, err)
	}
}

package redis_test

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

func TestBreakerConformanceOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	storetest.RunBreaker(t, func(t *testing.T) otp.BreakerStore { return redis.New(client, uniquePrefix()) })
}

func TestBreakerConformanceOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	client := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: cluster.Addrs})
	t.Cleanup(func() { client.Close() })
	storetest.RunBreaker(t, func(t *testing.T) otp.BreakerStore { return redis.New(client, uniquePrefix()) })
}

package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

// TestWaitForReplicas: with a replica, the store behaves as without the
// wait (the conformance suite); without one, using a right code is an
// error, never a step-up, and the code is spent all the same.
func TestWaitForReplicas(t *testing.T) {
	t.Run("with a replica the store passes the conformance suite", func(t *testing.T) {
		master := redistest.Start(t)
		redistest.StartReplica(t, master)
		client := goredis.NewClient(&goredis.Options{Addr: master.Addr})
		t.Cleanup(func() { client.Close() })
		storetest.Run(t, func(t *testing.T) otp.Store {
			return redis.New(client, uniquePrefix()).WaitForReplicas(1, time.Second)
		})
	})
	t.Run("a right code no replica acknowledged is an error, and spent", func(t *testing.T) {
		srv := redistest.Start(t)
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		plain := redis.New(client, "wr:")
		waiting := redis.New(client, "wr:").WaitForReplicas(1, 50*time.Millisecond)
		keys, err := otp.DeriveKeys([]byte(strings.Repeat("k", 32)))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1_800_000_000, 0)
		ctx := context.Background()
		c := otp.Challenge{
			ID: "chal1", Subject: "alice", PhoneHash: keys.PhoneHash("+819012345678"), PhoneMasked: "+81 90-****-5678",
			CodeMAC: keys.CodeMAC("chal1", "482915"), CreatedAt: now, SentAt: now, ExpiresAt: now.Add(5 * time.Minute), MaxAttempts: 5,
		}
		cfg := otp.DefaultConfig()
		if _, err := plain.Issue(ctx, otp.IssueRequest{Challenge: c, Now: now, MaxSends: 5, CooldownBase: cfg.CooldownBase,
			CooldownMax: cfg.CooldownMax, SendWindow: cfg.SendWindow}); err != nil {
			t.Fatal(err)
		}
		req := otp.VerifyRequest{Subject: "alice", ChallengeID: "chal1", CodeMAC: c.CodeMAC, Now: now, Failures: cfg.Failures}
		res, err := waiting.Verify(ctx, req)
		if err == nil || !strings.Contains(err.Error(), "0 of 1 replicas acknowledged") {
			t.Fatalf("verify with no replica: %+v, %v; want an error naming the replicas", res, err)
		}
		if res, err := plain.Verify(ctx, req); err != nil || res.Status != otp.VerifyNotFound {
			t.Fatalf("the same code again: %+v, %v; want not found (spent)", res, err)
		}
	})
}

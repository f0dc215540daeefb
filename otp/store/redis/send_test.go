package redis_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

// commandCounter counts the commands a client sends that Redis carried out:
// a script the server had not cached yet (NOSCRIPT, which go-redis answers
// by sending it whole) is one step, not two.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *commandCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			c.n.Add(1)
		}
		return err
	}
}

func (c *commandCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestASendIsOneRoundTripWhereKeysMayShareAScript holds issue 13's claim: on
// one server (as on Sentinel's master) a send with all six default limits
// is one script, one round trip; on a Cluster, where the counters live in
// other slots than the identity, it is a step on the identity, one per
// counter, and the issue.
func TestASendIsOneRoundTripWhereKeysMayShareAScript(t *testing.T) {
	t.Parallel()
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("r", 32)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := otp.DefaultConfig()
	now := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	// sends issues n first codes, each to another identity and number, and
	// returns how many commands the last one took.
	sends := func(t *testing.T, store *redis.Store, counter *commandCounter, n int) int64 {
		t.Helper()
		var last int64
		for i := range n {
			subject, e164 := fmt.Sprint("user-", i), fmt.Sprintf("+8190123400%02d", i)
			phone := otp.Phone{E164: e164, Region: "JP", Type: "mobile", Masked: otp.MaskE164(e164)}
			c := otp.Challenge{ID: "c1", Subject: subject, PhoneHash: keys.PhoneHash(e164), PhoneMasked: phone.Masked,
				CodeMAC: keys.CodeMAC("c1", "123456"), CreatedAt: now, SentAt: now, ExpiresAt: now.Add(cfg.CodeTTL), MaxAttempts: 5}
			req := otp.IssueRequest{Challenge: c, Now: now, MaxSends: cfg.MaxSends, CooldownBase: cfg.CooldownBase,
				CooldownMax: cfg.CooldownMax, SendWindow: cfg.SendWindow,
				Limits: cfg.Limits.Checks(keys, phone, subject, net.IPv4(192, 0, 2, byte(i)).String())}
			if len(req.Limits) != 6 {
				t.Fatalf("%d default limits, want 6", len(req.Limits))
			}
			before := counter.n.Load()
			if _, err := store.Issue(t.Context(), req); err != nil {
				t.Fatal(err)
			}
			last = counter.n.Load() - before
		}
		return last
	}
	t.Run("on one server a send is one command", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		counter := &commandCounter{}
		client.AddHook(counter)
		if n := sends(t, redis.New(client, "rt:"), counter, 3); n != 1 {
			t.Fatalf("a send took %d commands, want 1", n)
		}
	})
	t.Run("on a cluster a send is one step on the identity, one per counter and the issue", func(t *testing.T) {
		t.Parallel()
		cluster := redistest.StartCluster(t)
		client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cluster.Addrs})
		t.Cleanup(func() { client.Close() })
		counter := &commandCounter{}
		client.AddHook(counter)
		if n := sends(t, redis.New(client, "rt:"), counter, 3); n != 1+6+1 {
			t.Fatalf("a send took %d commands, want 8", n)
		}
	})
}

package redis_test

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

// BenchmarkVerify64 runs the verify script from 64 goroutines against a
// private redis-server: each call counts an attempt, compares and writes
// the failure count, the full path of a wrong guess. It reports ops/s and
// the 99th percentile latency.
//
//	go test -run XXX -bench Verify64 -benchtime 200000x ./otp/store/redis/
func BenchmarkVerify64(b *testing.B) {
	srv := redistest.Start(b)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, PoolSize: 64})
	b.Cleanup(func() { client.Close() })
	store := redis.New(client, "bench:")
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("b", 32)))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	const identities = 256
	for i := 0; i < identities; i++ {
		id := fmt.Sprint("c", i)
		_, err := store.Issue(ctx, otp.IssueRequest{
			Challenge: otp.Challenge{ID: id, Subject: id, PhoneHash: "p", PhoneMasked: "m", CodeMAC: keys.CodeMAC(id, "123456"),
				CreatedAt: now, SentAt: now, ExpiresAt: now.Add(time.Hour), MaxAttempts: 1 << 30},
			Now: now, MaxSends: 5, CooldownBase: time.Second, CooldownMax: time.Second, SendWindow: time.Hour,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	// Limits far out of reach, so every call takes the same path.
	failures := otp.FailurePolicy{Budget: 1 << 30, HardLimit: 1 << 30, DelayBase: time.Second, DelayMax: time.Second, Window: time.Hour}
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			id := fmt.Sprint("c", next.Add(1)%identities)
			t := time.Now()
			_, err := store.Verify(ctx, otp.VerifyRequest{Subject: id, ChallengeID: id, CodeMAC: keys.CodeMAC(id, "000000"), Now: now, Failures: failures})
			local = append(local, time.Since(t))
			if err != nil {
				b.Error(err)
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkServiceCycle64 runs whole step-ups through otp.Service on a
// private redis-server from 64 goroutines: a first code to a fresh identity
// and number, counted against all six default send limits, then its
// verification. It measures what a send and a verify cost the store, which
// the HTTP cycle benchmark (caddymodule) dilutes with Caddy's own work. It
// reports cycles/s and the 99th percentile cycle time.
//
//	go test -run XXX -bench ServiceCycle64 -benchtime 5s ./otp/store/redis/
func BenchmarkServiceCycle64(b *testing.B) {
	srv := redistest.Start(b)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, PoolSize: 64})
	b.Cleanup(func() { client.Close() })
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("b", 32)))
	if err != nil {
		b.Fatal(err)
	}
	gw := &benchGateway{codes: map[string]string{}}
	// Every cycle comes from one address and one number range: keep the
	// limits counted (their cost is part of a send) but out of reach.
	cfg := otp.DefaultConfig()
	cfg.Limits = otp.SendLimits{PerPhone: 1 << 30, PerIdentity: 1 << 30, PerIP: 1 << 30, PerPrefix: 1 << 30,
		PerCountryHour: 1 << 30, DailyBudget: 1 << 30, Window: time.Hour}
	svc, err := otp.NewService(cfg, redis.New(client, "cycle:"), gw, keys, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			n := next.Add(1)
			subject, e164 := fmt.Sprint("bench-", n), fmt.Sprintf("+8190%08d", n)
			phone := otp.Phone{E164: e164, Region: "JP", Type: "mobile", Masked: otp.MaskE164(e164)}
			t := time.Now()
			res, err := svc.Send(ctx, otp.SendRequest{Subject: subject, Phone: phone, ClientIP: "192.0.2.1"})
			if err != nil {
				b.Error(err)
				return
			}
			v, err := svc.Verify(ctx, otp.VerifyInput{Subject: subject, ChallengeID: res.Challenge.ID, Code: gw.code(e164)})
			if err != nil || v.Status != otp.VerifyOK {
				b.Errorf("verify: %s, %v", v.Status, err)
				return
			}
			local = append(local, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "cycles/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

// benchGateway hands each number's last code to the benchmark.
type benchGateway struct {
	mu    sync.Mutex
	codes map[string]string
}

var benchCode = regexp.MustCompile(`\b\d{6}\b`)

func (g *benchGateway) Send(_ context.Context, m otp.Message) (otp.Receipt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.codes[m.To] = benchCode.FindString(m.Body)
	return otp.Receipt{}, nil
}

func (g *benchGateway) code(to string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.codes[to]
	delete(g.codes, to)
	return c
}

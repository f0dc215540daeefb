package redis_test

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

// BenchmarkRoundTripCPU measures what one store round trip costs the
// client's process in CPU, not in wall time: the verification of a wrong
// code (one script) from one goroutine against a private redis-server,
// with the client options the Caddy module uses (sms_stepup.stores.redis)
// and variants of them. It reports the process's CPU per call (user and
// system, from getrusage: go-redis's encoding, its pool, the syscalls and
// the scheduler's park and wake-up while the reply is on its way), besides
// B/op and allocs/op. The server's CPU is another process's and not in it.
//
//	go test -run XXX -bench RoundTripCPU -benchtime 20000x ./otp/store/redis/
func BenchmarkRoundTripCPU(b *testing.B) {
	redistest.Require(b, "redis-server")
	srv := redistest.Start(b)
	module := func() *goredis.UniversalOptions {
		// As caddymodule.RedisStore.options() builds them.
		return &goredis.UniversalOptions{Addrs: []string{srv.Addr}, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
			PoolTimeout: time.Second, ContextTimeoutEnabled: true}
	}
	variants := []struct {
		name string
		opts func() *goredis.UniversalOptions
	}{
		{"module", module},
		{"resp2", func() *goredis.UniversalOptions { o := module(); o.Protocol = 2; return o }},
		{"no-ctx-timeout", func() *goredis.UniversalOptions { o := module(); o.ContextTimeoutEnabled = false; return o }},
		{"no-health-peek", func() *goredis.UniversalOptions {
			o := module()
			o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				return opaqueConn{c}, err
			}
			return o
		}},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) { benchRoundTrip(b, goredis.NewUniversalClient(v.opts())) })
	}
	// The floor: a PING written and its answer read on a bare TCP
	// connection, no go-redis, no script.
	b.Run("bare-ping", func(b *testing.B) {
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		buf := make([]byte, 64)
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := processCPU()
		for b.Loop() {
			if _, err := conn.Write([]byte("PING\r\n")); err != nil {
				b.Fatal(err)
			}
			if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "+PONG\r\n" {
				b.Fatalf("%q %v", buf[:n], err)
			}
		}
		reportCPU(b, cpu0)
	})
}

// opaqueConn hides syscall.Conn, which go-redis's pool needs for its
// health peek (a recvfrom with MSG_PEEK) on every Get.
type opaqueConn struct{ net.Conn }

func benchRoundTrip(b *testing.B, client goredis.UniversalClient) {
	b.Cleanup(func() { client.Close() })
	store := redis.New(client, "rt:")
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("r", 32)))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	_, err = store.Issue(ctx, otp.IssueRequest{
		Challenge: otp.Challenge{ID: "c", Subject: "s", PhoneHash: "p", PhoneMasked: "m", CodeMAC: keys.CodeMAC("c", "123456"),
			CreatedAt: now, SentAt: now, ExpiresAt: now.Add(time.Hour), MaxAttempts: 1 << 30},
		Now: now, MaxSends: 5, CooldownBase: time.Second, CooldownMax: time.Second, SendWindow: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	failures := otp.FailurePolicy{Budget: 1 << 30, HardLimit: 1 << 30, DelayBase: time.Second, DelayMax: time.Second, Window: time.Hour}
	req := otp.VerifyRequest{Subject: "s", ChallengeID: "c", CodeMAC: keys.CodeMAC("c", "000000"), Now: now, Failures: failures}
	if _, err := store.Verify(ctx, req); err != nil { // the script cached, a connection in the pool
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for b.Loop() {
		if res, err := store.Verify(ctx, req); err != nil || res.Status != otp.VerifyWrong {
			b.Fatalf("verify: %v %v", res.Status, err)
		}
	}
	reportCPU(b, cpu0)
}

// cpuTimes are the user and system CPU time this process has had.
type cpuTimes struct{ user, sys time.Duration }

func processCPU() cpuTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}
	}
	return cpuTimes{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}

// reportCPU reports the CPU per op since cpu0: in all, and the kernel's
// share (system time: the syscalls, the scheduler's sleeps and wake-ups).
func reportCPU(b *testing.B, cpu0 cpuTimes) {
	cpu := processCPU()
	perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(perOp(cpu.user-cpu0.user+cpu.sys-cpu0.sys), "cpu-µs/op")
	b.ReportMetric(perOp(cpu.sys-cpu0.sys), "sys-µs/op")
}

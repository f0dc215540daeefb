package main

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// sweepWorkers is how many goroutines stand for concurrent requests.
const sweepWorkers = 4

// sweepLatency measures request latency in process: sweepWorkers
// goroutines call Verify (a wrong code, on an identity the store holds)
// and Issue (a new identity, with its send limits when limits is set) in
// turn, first for a second with no sweep, then while the sweeper removes
// every challenge the store holds (all expired by then). It prints the
// 99th percentile and the longest call of each phase and how long the
// sweep took; the last line is machine-readable for bench/run.
func sweepLatency(store *memory.Store, keys *otp.Keys, now time.Time, limits bool) {
	later := now.Add(2 * time.Hour) // every challenge and limit window has ended
	quiet := run(store, keys, later, limits, 0, func(stop func()) { time.Sleep(time.Second); stop() })
	var took time.Duration
	sweeping := run(store, keys, later, limits, 1<<40, func(stop func()) {
		t0 := time.Now()
		store.Sweep(later)
		took = time.Since(t0)
		stop()
	})
	// What is left is what the workers issued (not yet expired) at most.
	if ids, ch := store.Len(); ch > len(quiet.lat)+len(sweeping.lat) {
		log.Fatalf("the sweep left %d challenges of %d identities", ch, ids)
	}
	fmt.Printf("without a sweep: %d calls, p99 %.1f µs, longest %.1f µs\n", len(quiet.lat), quiet.p99(), quiet.max())
	fmt.Printf("while sweeping (%.0f ms): %d calls, p99 %.1f µs, longest %.1f µs\n",
		float64(took.Microseconds())/1000, len(sweeping.lat), sweeping.p99(), sweeping.max())
	fmt.Printf("SWEEP sweep_ms=%.1f quiet_p99_us=%.1f quiet_max_us=%.1f sweep_p99_us=%.1f sweep_max_us=%.1f sweep_calls=%d\n",
		float64(took.Microseconds())/1000, quiet.p99(), quiet.max(), sweeping.p99(), sweeping.max(), len(sweeping.lat))
}

type latencies struct{ lat []time.Duration }

func (l latencies) p99() float64 {
	if len(l.lat) == 0 {
		return 0
	}
	return float64(l.lat[len(l.lat)*99/100].Nanoseconds()) / 1000
}

func (l latencies) max() float64 {
	if len(l.lat) == 0 {
		return 0
	}
	return float64(l.lat[len(l.lat)-1].Nanoseconds()) / 1000
}

// run calls Verify and Issue from sweepWorkers goroutines until during
// calls stop, and returns the sorted latencies. New identities are
// numbered from base upwards (apart from those of other phases).
func run(store *memory.Store, keys *otp.Keys, now time.Time, limits bool, base int64, during func(stop func())) latencies {
	ctx := context.Background()
	var done atomic.Bool
	var seq atomic.Int64
	seq.Store(base)
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	for w := 0; w < sweepWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for i := 0; !done.Load(); i++ {
				n := seq.Add(1)
				t0 := time.Now()
				if i%2 == 0 {
					subject := fmt.Sprintf("user-%07d@example.com", n%100000)
					_, err := store.Verify(ctx, otp.VerifyRequest{Subject: subject, ChallengeID: "x", CodeMAC: keys.CodeMAC("x", "000000"), Now: now})
					if err != nil && err != otp.ErrChallengeNotFound {
						log.Fatalf("verify: %v", err)
					}
				} else if err := issue(ctx, store, keys, now, n, limits); err != nil {
					log.Fatalf("issue: %v", err)
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	during(func() { done.Store(true) })
	wg.Wait()
	slices.Sort(all)
	return latencies{all}
}

// issue sends a code to identity n, as main does.
func issue(ctx context.Context, store *memory.Store, keys *otp.Keys, now time.Time, n int64, limits bool) error {
	subject := fmt.Sprintf("new-%d@example.com", n)
	phone := fmt.Sprintf("+8180%08d", n%1e8)
	id := fmt.Sprintf("cid-%018d", n)
	var checks []otp.LimitCheck
	if limits {
		checks = []otp.LimitCheck{
			{Name: "phone", Key: keys.PhoneHash("limit-phone" + phone), Max: 1 << 30, Window: time.Hour},
			{Name: "identity", Key: keys.PhoneHash("limit-identity" + subject), Max: 1 << 30, Window: time.Hour},
			{Name: "ip", Key: "shared-ip", Max: 1 << 30, Window: time.Hour},
		}
	}
	_, err := store.Issue(ctx, otp.IssueRequest{
		Challenge: otp.Challenge{ID: id, Subject: subject, SessionHash: keys.SessionHash(subject), PhoneHash: keys.PhoneHash(phone),
			PhoneMasked: "+81 80-****-" + phone[len(phone)-4:], CodeMAC: keys.CodeMAC(id, "123456"),
			CreatedAt: now, SentAt: now, ExpiresAt: now.Add(5 * time.Minute), MaxAttempts: 5},
		Now: now, MaxSends: 5, CooldownBase: 30 * time.Second, CooldownMax: 10 * time.Minute,
		SendWindow: time.Hour, Limits: checks,
	})
	return err
}

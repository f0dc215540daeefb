// Command memstore measures what the memory store costs per live challenge:
// it issues -n challenges (each for its own identity, session and phone,
// with the field sizes the plugin writes: a 22-character id, keyed hashes,
// a masked number and a 32-byte code MAC), forces a garbage collection and
// reports the growth of runtime.MemStats.HeapInuse.
//
//	go run ./bench/memstore -n 100000
//
// With -limits it also raises, for every send, the send-limit counters the
// service keeps (per phone and per identity, each distinct here, and the
// shared per-address, per-country and daily ones) and reports the total
// again. The last line is machine-readable for bench/run. With -sweep it
// then measures what the sweeper does to requests (sweep.go).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

func heapInuse() uint64 {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func main() {
	n := flag.Int("n", 100000, "live challenges to hold")
	limits := flag.Bool("limits", false, "also keep the send-limit counters of each send")
	memprofile := flag.String("memprofile", "", "write a heap profile (every allocation sampled) to this file")
	sweep := flag.Bool("sweep", false, "then measure request latency while the sweeper removes every challenge (sweep.go)")
	flag.Parse()
	if *memprofile != "" {
		runtime.MemProfileRate = 2048 // sampled finely enough for a per-line top, and fast
	}

	keys, err := otp.DeriveKeys([]byte("bench-memstore-root-key-0123456789abcdef"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	before := heapInuse()
	store := memory.New(otp.SystemClock{}, time.Hour)
	defer store.Close()

	var raw [16]byte
	for i := 0; i < *n; i++ {
		if _, err := rand.Read(raw[:]); err != nil {
			log.Fatal(err)
		}
		id := base64.RawURLEncoding.EncodeToString(raw[:])
		subject := fmt.Sprintf("user-%07d@example.com", i)
		phone := fmt.Sprintf("+8190%08d", i)
		c := otp.Challenge{
			ID:          id,
			Subject:     subject,
			SessionHash: keys.SessionHash(fmt.Sprintf("session-%07d", i)),
			PhoneHash:   keys.PhoneHash(phone),
			PhoneMasked: "+81 90-****-" + phone[len(phone)-4:],
			CodeMAC:     keys.CodeMAC(id, "123456"),
			CreatedAt:   now,
			SentAt:      now,
			ExpiresAt:   now.Add(5 * time.Minute),
			MaxAttempts: 5,
		}
		var checks []otp.LimitCheck
		if *limits {
			checks = []otp.LimitCheck{
				{Name: "phone", Key: keys.PhoneHash("limit-phone" + phone), Max: 1 << 30, Window: time.Hour},
				{Name: "identity", Key: keys.PhoneHash("limit-identity" + subject), Max: 1 << 30, Window: time.Hour},
				{Name: "ip", Key: "shared-ip", Max: 1 << 30, Window: time.Hour},
				{Name: "prefix", Key: keys.PhoneHash("limit-prefix" + phone[:9]), Max: 1 << 30, Window: time.Hour},
				{Name: "country", Key: "jp", Max: 1 << 30, Window: time.Hour},
				{Name: "daily", Key: "all", Max: 1 << 30, Window: 24 * time.Hour},
			}
		}
		_, err := store.Issue(ctx, otp.IssueRequest{
			Challenge:    c,
			Now:          now,
			MaxSends:     5,
			CooldownBase: 30 * time.Second,
			CooldownMax:  10 * time.Minute,
			SendWindow:   time.Hour,
			Limits:       checks,
		})
		if err != nil {
			log.Fatalf("issue %d: %v", i, err)
		}
	}
	after := heapInuse()
	identities, challenges := store.Len()
	if challenges != *n {
		log.Fatalf("store holds %d challenges, want %d", challenges, *n)
	}
	delta := int64(after) - int64(before)
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			log.Fatal(err)
		}
		f.Close()
	}
	runtime.KeepAlive(store)
	fmt.Printf("identities %d, live challenges %d, limits %v\n", identities, challenges, *limits)
	fmt.Printf("HeapInuse %.1f MB before, %.1f MB after: %.1f MB, %d bytes per challenge\n",
		float64(before)/1e6, float64(after)/1e6, float64(delta)/1e6, delta/int64(*n))
	fmt.Printf("RESULT challenges=%d limits=%v heap_inuse_delta_bytes=%d mb=%.1f bytes_per_challenge=%d\n",
		challenges, *limits, delta, float64(delta)/1e6, delta/int64(*n))
	if *sweep {
		sweepLatency(store, keys, now, *limits)
	}
}

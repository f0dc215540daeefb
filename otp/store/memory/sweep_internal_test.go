package memory

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestSweepLetsTheLockGoBetweenBatches fills the store with many more
// expired identities per shard than one batch, plus live ones, and sweeps.
// Between batches the shard's lock must be free (a request could take it),
// so no request waits for a whole shard however big the store is; and the
// sweep must still drop every expired identity and keep every live one.
func TestSweepLetsTheLockGoBetweenBatches(t *testing.T) {
	t0 := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	s := New(nil, time.Hour) // the test sweeps itself
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	// Batches of 4, so that a shard holds several with few identities.
	defer func(b int) { sweepBatch = b }(sweepBatch)
	sweepBatch = 4
	const expired, live = 4000, 100
	issue := func(subject string, ttl time.Duration) {
		t.Helper()
		id := "cid-" + subject
		_, err := s.Issue(ctx, otp.IssueRequest{
			Challenge: otp.Challenge{ID: id, Subject: subject, CodeMAC: make([]byte, 32),
				CreatedAt: t0, SentAt: t0, ExpiresAt: t0.Add(ttl), MaxAttempts: 5},
			Now: t0, MaxSends: 5, SendWindow: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range expired {
		issue(fmt.Sprint("old-", i), time.Minute)
	}
	for i := range live {
		issue(fmt.Sprint("live-", i), time.Hour)
	}

	pauses, held := 0, 0
	sweepPaused = func(sh *shard) {
		pauses++
		if !sh.mu.TryLock() {
			held++
			return
		}
		sh.mu.Unlock()
	}
	t.Cleanup(func() { sweepPaused = nil })
	s.Sweep(t0.Add(10 * time.Minute))

	if held > 0 {
		t.Errorf("the shard's lock was held between batches %d times of %d", held, pauses)
	}
	// Each shard holds about (expired+live)/shardCount identities: at least
	// one pause for every full batch beyond a shard's first.
	if want := (expired+live)/sweepBatch - shardCount; pauses < want {
		t.Errorf("the sweep paused %d times, want at least %d (one per batch of %d)", pauses, want, sweepBatch)
	}
	ids, challenges := s.Len()
	if ids != live || challenges != live {
		t.Errorf("after the sweep: %d identities, %d challenges; want the %d live ones", ids, challenges, live)
	}
}

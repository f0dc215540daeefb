package memory_test

import (
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

func TestHistoryConformance(t *testing.T) {
	storetest.RunHistory(t, func(t *testing.T) otp.HistoryStore {
		s := memory.New(&clock{now: t0}, time.Hour)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestHistorySweeperDropsExpiredLists checks that the sweeper drops entries
// a retention old, and a list once it is empty, so an idle store shrinks.
func TestHistorySweeperDropsExpiredLists(t *testing.T) {
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	rec := func(at time.Time, keys ...string) otp.HistoryRecord {
		r := otp.HistoryRecord{At: at, Data: []byte("sealed"), Retention: time.Hour}
		for _, k := range keys {
			r.Lists = append(r.Lists, otp.HistoryList{Key: k, Max: 10})
		}
		return r
	}
	for _, r := range []otp.HistoryRecord{rec(t0, "alice", "prefix"), rec(t0.Add(30*time.Minute), "prefix")} {
		if err := s.AppendHistory(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if lists, entries := s.HistoryLen(); lists != 2 || entries != 3 {
		t.Fatalf("%d lists and %d entries, want 2 and 3", lists, entries)
	}
	s.Sweep(t0.Add(time.Hour))
	if lists, entries := s.HistoryLen(); lists != 1 || entries != 1 {
		t.Fatalf("after the first entries' retention: %d lists and %d entries, want 1 and 1", lists, entries)
	}
	s.Sweep(t0.Add(90 * time.Minute))
	if lists, entries := s.HistoryLen(); lists != 0 || entries != 0 {
		t.Fatalf("after every retention: %d lists and %d entries, want none", lists, entries)
	}
}

func TestBackoffConformance(t *testing.T) {
	storetest.RunBackoff(t, func(t *testing.T) otp.Store {
		s := memory.New(&clock{now: t0}, time.Hour)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

package memory

import (
	"strconv"
	"testing"
	"time"
)

// TestLookupCacheStaysBounded fills the cache to maxLookups: a further new
// answer is dropped (not an error: the source is asked again next time),
// replacing an answer still works, and once answers expire there is room
// again.
func TestLookupCacheStaysBounded(t *testing.T) {
	s := New(nil, time.Hour)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	t0 := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	for i := range maxLookups {
		if err := s.CacheLookup(ctx, strconv.Itoa(i), []byte("v"), t0, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CacheLookup(ctx, "one more", []byte("v"), t0, time.Minute); err != nil {
		t.Fatalf("a write to a full cache failed: %v", err)
	}
	if _, ok, _ := s.CachedLookup(ctx, "one more", t0); ok {
		t.Errorf("a full cache kept a new answer: %d held", len(s.lookups.entries))
	}
	if err := s.CacheLookup(ctx, "0", []byte("new"), t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.CachedLookup(ctx, "0", t0); string(v) != "new" {
		t.Errorf("a full cache did not replace an answer it holds: %q", v)
	}
	later := t0.Add(time.Minute)
	if err := s.CacheLookup(ctx, "one more", []byte("v"), later, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.CachedLookup(ctx, "one more", later); !ok {
		t.Error("the cache had no room once every answer had expired")
	}
	if n := len(s.lookups.entries); n != 1 {
		t.Errorf("%d answers held after the expired ones were dropped, want 1", n)
	}
}

package storetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// RunHistory is the conformance suite of otp.HistoryStore, the part of a
// store that keeps the send history. newStore follows Run's rules: a fresh,
// unshared store per call. Time moves by the instants passed; a store's
// own expiry of whole lists (Redis's TTL) is its own test.
func RunHistory(t *testing.T, newStore func(t *testing.T) otp.HistoryStore) {
	for _, tc := range historyCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

var historyCases = []struct {
	name string
	run  func(*testing.T, otp.HistoryStore)
}{
	{"a list never written is empty", historyNeverWritten},
	{"entries are read back newest first, byte for byte, with their time", historyReadBack},
	{"a record goes into each of its lists and no other", historyListsApart},
	{"a list keeps only its newest max entries", historyCapped},
	{"an entry older than the retention is gone", historyExpires},
	{"since and max bound what is read", historySinceAndMax},
	{"an invalid record is refused and kept nowhere", historyInvalidRefused},
	{"200 concurrent appends to a list of max 10 leave exactly the 10 newest", historyConcurrentAppends},
	{"a cancelled context fails the append and the read", historyCancelled},
}

const historyRetention = 7 * 24 * time.Hour

// historyRecord is entry data (a stand-in for a sealed entry, with every
// byte value) at t0 plus i seconds, in lists.
func historyRecord(i int, lists ...otp.HistoryList) otp.HistoryRecord {
	data := append(binaryValue(), []byte("entry "+strconv.Itoa(i))...)
	return otp.HistoryRecord{Lists: lists, At: t0.Add(time.Duration(i) * time.Second), Data: data, Retention: historyRetention}
}

func list(key string, max int) otp.HistoryList { return otp.HistoryList{Key: key, Max: max} }

func appendHistory(t *testing.T, s otp.HistoryStore, rec otp.HistoryRecord) {
	t.Helper()
	if err := s.AppendHistory(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
}

// readHistory reads list key at now, all of the retention, up to 1000.
func readHistory(t *testing.T, s otp.HistoryStore, key string, now time.Time) []otp.HistoryItem {
	t.Helper()
	items, err := s.History(t.Context(), key, time.Time{}, now, historyRetention, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// wantEntries checks that items are the entries numbered want, in order.
func wantEntries(t *testing.T, items []otp.HistoryItem, want ...int) {
	t.Helper()
	got := make([]int, 0, len(items))
	for _, it := range items {
		var n int
		if _, err := fmt.Sscanf(string(it.Data[256:]), "entry %d", &n); err != nil {
			t.Fatalf("entry data %q: %v", it.Data, err)
		}
		got = append(got, n)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
}

func historyNeverWritten(t *testing.T, s otp.HistoryStore) {
	if items := readHistory(t, s, "never", t0); len(items) != 0 {
		t.Errorf("a list never written holds %d entries", len(items))
	}
}

func historyReadBack(t *testing.T, s otp.HistoryStore) {
	for i := range 3 {
		appendHistory(t, s, historyRecord(i, list("alice", 10)))
	}
	items := readHistory(t, s, "alice", t0.Add(time.Minute))
	wantEntries(t, items, 2, 1, 0)
	want := historyRecord(2)
	if !items[0].At.Equal(want.At) || string(items[0].Data) != string(want.Data) {
		t.Errorf("newest entry: %s %q, want %s %q", items[0].At, items[0].Data, want.At, want.Data)
	}
	// The reader may change what it was given; the store's copy must not.
	items[0].Data[0] = 'x'
	if again := readHistory(t, s, "alice", t0.Add(time.Minute)); again[0].Data[0] != 0 {
		t.Error("the stored entry changed with the slice a reader was given")
	}
}

func historyListsApart(t *testing.T, s otp.HistoryStore) {
	appendHistory(t, s, historyRecord(0, list("alice", 10), list("prefix", 10)))
	appendHistory(t, s, historyRecord(1, list("bob", 10), list("prefix", 10)))
	now := t0.Add(time.Minute)
	wantEntries(t, readHistory(t, s, "alice", now), 0)
	wantEntries(t, readHistory(t, s, "bob", now), 1)
	wantEntries(t, readHistory(t, s, "prefix", now), 1, 0)
	wantEntries(t, readHistory(t, s, "Alice", now))
}

func historyCapped(t *testing.T, s otp.HistoryStore) {
	for i := range 8 {
		appendHistory(t, s, historyRecord(i, list("alice", 5), list("prefix", 3)))
	}
	now := t0.Add(time.Minute)
	wantEntries(t, readHistory(t, s, "alice", now), 7, 6, 5, 4, 3)
	wantEntries(t, readHistory(t, s, "prefix", now), 7, 6, 5)
}

func historyExpires(t *testing.T, s otp.HistoryStore) {
	appendHistory(t, s, historyRecord(0, list("alice", 10)))
	appendHistory(t, s, historyRecord(60, list("alice", 10)))
	// Just before the first entry is a retention old, both are there.
	wantEntries(t, readHistory(t, s, "alice", t0.Add(historyRetention-time.Second)), 60, 0)
	wantEntries(t, readHistory(t, s, "alice", t0.Add(historyRetention)), 60)
	// A later append drops the expired entry for good: a read with a
	// longer retention does not bring it back.
	late := historyRecord(0, list("alice", 10))
	late.At = t0.Add(historyRetention + 30*time.Second)
	appendHistory(t, s, late)
	items, err := s.History(t.Context(), "alice", time.Time{}, late.At, 2*historyRetention, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || !items[1].At.Equal(t0.Add(time.Minute)) {
		t.Errorf("after an append past the retention: %d entries, want the one of a minute and the new one", len(items))
	}
}

func historySinceAndMax(t *testing.T, s otp.HistoryStore) {
	for i := range 6 {
		appendHistory(t, s, historyRecord(i*10, list("alice", 10)))
	}
	now := t0.Add(time.Hour)
	items, err := s.History(t.Context(), "alice", t0.Add(20*time.Second), now, historyRetention, 10)
	if err != nil {
		t.Fatal(err)
	}
	wantEntries(t, items, 50, 40, 30, 20)
	if items, err = s.History(t.Context(), "alice", time.Time{}, now, historyRetention, 2); err != nil {
		t.Fatal(err)
	}
	wantEntries(t, items, 50, 40)
	// What comes after now is not yet history.
	if items, err = s.History(t.Context(), "alice", time.Time{}, t0.Add(25*time.Second), historyRetention, 10); err != nil {
		t.Fatal(err)
	}
	wantEntries(t, items, 20, 10, 0)
}

func historyInvalidRefused(t *testing.T, s otp.HistoryStore) {
	bad := []otp.HistoryRecord{
		historyRecord(0),
		historyRecord(0, list("", 10)),
		historyRecord(0, list("alice", 0), list("bob", 10)),
		{Lists: []otp.HistoryList{list("alice", 10)}, At: t0, Retention: historyRetention},
		{Lists: []otp.HistoryList{list("alice", 10)}, At: t0, Data: []byte("x")},
	}
	for i, rec := range bad {
		if err := s.AppendHistory(t.Context(), rec); err == nil {
			t.Errorf("invalid record %d was accepted", i)
		}
	}
	wantEntries(t, readHistory(t, s, "alice", t0.Add(time.Minute)))
	wantEntries(t, readHistory(t, s, "bob", t0.Add(time.Minute)))
}

func historyConcurrentAppends(t *testing.T, s otp.HistoryStore) {
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() { errs <- s.AppendHistory(t.Context(), historyRecord(i, list("alice", 10))) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantEntries(t, readHistory(t, s, "alice", t0.Add(time.Hour)), 199, 198, 197, 196, 195, 194, 193, 192, 191, 190)
}

func historyCancelled(t *testing.T, s otp.HistoryStore) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.AppendHistory(ctx, historyRecord(0, list("alice", 10))); err == nil {
		t.Error("AppendHistory with a cancelled context succeeded")
	}
	if _, err := s.History(ctx, "alice", time.Time{}, t0, historyRetention, 10); err == nil {
		t.Error("History with a cancelled context succeeded")
	}
	wantEntries(t, readHistory(t, s, "alice", t0.Add(time.Minute)))
}

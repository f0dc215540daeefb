package otp

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

var memoNow = time.Unix(1_700_000_000, 0)

func memoPrefix(key string) LimitCheck {
	return LimitCheck{Name: LimitPrefix, Key: key, Max: 1, Window: time.Hour}
}

func wantHeldLimit(t *testing.T, err error, limit string, retryAt time.Time) {
	t.Helper()
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.Limit != limit || !rl.RetryAt.Equal(retryAt) {
		t.Fatalf("held %v, want the %s limit until %s", err, limit, retryAt)
	}
}

// A refusal is repeated until the store's RetryAt or the hold, whichever
// is first, and only for the counter the store named.
func TestRefusalMemoHoldsUntilTheStoresTimeOrTheHold(t *testing.T) {
	t.Parallel()
	m := newRefusalMemo()
	short, long := memoPrefix("short"), memoPrefix("long")
	m.remember(limitRefusal(short), memoNow.Add(3*time.Second), memoNow)
	m.remember(limitRefusal(long), memoNow.Add(time.Hour), memoNow)

	wantHeldLimit(t, m.held(nil, []LimitCheck{short}, memoNow.Add(2*time.Second)), LimitPrefix, memoNow.Add(3*time.Second))
	if err := m.held(nil, []LimitCheck{short}, memoNow.Add(3*time.Second)); err != nil {
		t.Errorf("held at the end of the store's window: %v", err)
	}
	// The store's own RetryAt comes back, not the hold's end.
	wantHeldLimit(t, m.held(nil, []LimitCheck{long}, memoNow.Add(RefusalHold-time.Nanosecond)), LimitPrefix, memoNow.Add(time.Hour))
	if err := m.held(nil, []LimitCheck{long}, memoNow.Add(RefusalHold)); err != nil {
		t.Errorf("held past RefusalHold (an operator's reset elsewhere would go unseen longer): %v", err)
	}
	if err := m.held(nil, []LimitCheck{memoPrefix("other")}, memoNow); err != nil {
		t.Errorf("held a counter the store did not refuse: %v", err)
	}
	// The same key under another limit is another counter.
	if err := m.held(nil, []LimitCheck{{Name: LimitPhone, Key: "long"}}, memoNow); err != nil {
		t.Errorf("held the phone limit for the prefix's key: %v", err)
	}
	m.remember(limitRefusal(memoPrefix("over")), memoNow, memoNow)
	if err := m.held(nil, []LimitCheck{memoPrefix("over")}, memoNow.Add(-time.Second)); err != nil {
		t.Errorf("held a refusal whose window had ended: %v", err)
	}
}

// Blocks come before limits, and limits in the order given (the store's).
func TestRefusalMemoKeepsTheStoresOrder(t *testing.T) {
	t.Parallel()
	m := newRefusalMemo()
	phone, prefix := LimitCheck{Name: LimitPhone, Key: "p"}, memoPrefix("x")
	m.remember(limitRefusal(prefix), memoNow.Add(time.Minute), memoNow)
	m.remember(limitRefusal(phone), memoNow.Add(2*time.Minute), memoNow)
	wantHeldLimit(t, m.held(nil, []LimitCheck{phone, prefix}, memoNow), LimitPhone, memoNow.Add(2*time.Minute))
	m.remember(scopeRefusal("range:+81901"), memoNow.Add(time.Hour), memoNow)
	err := m.held([]string{"prefix:+8190123", "range:+81901"}, []LimitCheck{phone, prefix}, memoNow)
	var bl *BlockedError
	if !errors.As(err, &bl) || bl.Scope != "range:+81901" || !bl.Until.Equal(memoNow.Add(time.Hour)) {
		t.Fatalf("held %v, want the range's block until +1h", err)
	}
	m.forget(scopeRefusal("range:+81901"), limitRefusal(phone))
	wantHeldLimit(t, m.held([]string{"range:+81901"}, []LimitCheck{phone, prefix}, memoNow), LimitPrefix, memoNow.Add(time.Minute))
}

// The memo stays within its bound under a flood of distinct counters.
func TestRefusalMemoIsBounded(t *testing.T) {
	t.Parallel()
	m := newRefusalMemo()
	for i := range 3 * maxHeldRefusals {
		m.remember(limitRefusal(memoPrefix(fmt.Sprint(i))), memoNow.Add(time.Hour), memoNow)
		if len(m.by) > maxHeldRefusals {
			t.Fatalf("%d entries after %d refusals, bound %d", len(m.by), i+1, maxHeldRefusals)
		}
	}
	// The newest is kept: the shrink makes room before it is added.
	last := memoPrefix(fmt.Sprint(3*maxHeldRefusals - 1))
	wantHeldLimit(t, m.held(nil, []LimitCheck{last}, memoNow), LimitPrefix, memoNow.Add(time.Hour))
}

// Concurrent sends remembering, reading and an operator forgetting
// (run with -race).
func TestRefusalMemoIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	m := newRefusalMemo()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				c := memoPrefix(fmt.Sprint((g*2000 + i) % 300))
				now := memoNow.Add(time.Duration(i) * time.Millisecond)
				switch i % 3 {
				case 0:
					m.remember(limitRefusal(c), now.Add(time.Minute), now)
				case 1:
					_ = m.held([]string{"prefix:+8190123"}, []LimitCheck{c}, now)
				default:
					m.forget(limitRefusal(c))
				}
			}
		})
	}
	wg.Wait()
	if len(m.by) > 300 {
		t.Fatalf("%d entries for 300 counters", len(m.by))
	}
}

package memory

import (
	"context"
	"errors"
	"time"
)

// maxReplays caps the kept forms held at once. Past it a form is not kept
// (the user is asked to send it again, as without replay), so a flood of
// posts cannot grow the store without bound.
const maxReplays = 10_000

var errReplaysFull = errors.New("memory store: too many kept forms; this one is not kept")

// KeepReplay implements otp.ReplayStore.
func (s *Store) KeepReplay(ctx context.Context, key string, value []byte, now time.Time, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &s.replays
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]lookupEntry)
	}
	if _, replaces := c.entries[key]; !replaces && len(c.entries) >= maxReplays {
		c.expire(nanos(now))
		if len(c.entries) >= maxReplays {
			return errReplaysFull
		}
	}
	c.entries[key] = lookupEntry{value: append([]byte(nil), value...), expires: nanos(now.Add(ttl))}
	return nil
}

// PeekReplay implements otp.ReplayStore.
func (s *Store) PeekReplay(ctx context.Context, key string, now time.Time) ([]byte, bool, error) {
	return s.readReplay(ctx, key, now, false)
}

// TakeReplay implements otp.ReplayStore: the read and the delete happen
// under one lock.
func (s *Store) TakeReplay(ctx context.Context, key string, now time.Time) ([]byte, bool, error) {
	return s.readReplay(ctx, key, now, true)
}

func (s *Store) readReplay(ctx context.Context, key string, now time.Time, take bool) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	c := &s.replays
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || nanos(now) >= e.expires {
		return nil, false, nil
	}
	if take {
		delete(c.entries, key)
		return e.value, true, nil
	}
	return append([]byte(nil), e.value...), true, nil
}

func (s *Store) sweepReplays(now time.Time) {
	c := &s.replays
	c.mu.Lock()
	c.expire(nanos(now))
	c.mu.Unlock()
}

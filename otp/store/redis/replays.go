package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// replayKey is where one kept form is kept. key is already a keyed hash
// of the form's one-time id (otp.Keys.ReplayKey); each form is a single
// key of its own, so forms spread over a cluster.
func (s *Store) replayKey(key string) string {
	return s.prefix + "replay:" + key
}

// KeepReplay implements otp.ReplayStore. Redis expires the form by its own
// clock, so now is not needed.
func (s *Store) KeepReplay(ctx context.Context, key string, value []byte, _ time.Time, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("redis keep replay: lifetime %s, expected at least 1ms", ttl)
	}
	if err := s.client.Set(ctx, s.replayKey(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("redis keep replay: %w", err)
	}
	return nil
}

// PeekReplay implements otp.ReplayStore.
func (s *Store) PeekReplay(ctx context.Context, key string, _ time.Time) ([]byte, bool, error) {
	return replayAnswer(s.client.Get(ctx, s.replayKey(key)).Bytes())
}

// takeReplayScript reads and deletes one key in one step (GETDEL, which
// needs Redis 6.2, as a script that any version runs).
var takeReplayScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v`)

// TakeReplay implements otp.ReplayStore with one script, so of two
// concurrent takes only one gets the form.
func (s *Store) TakeReplay(ctx context.Context, key string, _ time.Time) ([]byte, bool, error) {
	v, err := takeReplayScript.Run(ctx, s.client, []string{s.replayKey(key)}).Text()
	return replayAnswer([]byte(v), err)
}

func replayAnswer(v []byte, err error) ([]byte, bool, error) {
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis kept form: %w", err)
	}
	return v, true, nil
}

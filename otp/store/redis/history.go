package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// historyKey is one history list: a sorted set of sealed entries scored by
// their time in milliseconds. key is already a keyed hash (of the identity,
// the number prefix or the challenge); the hash tag keeps each list whole
// on one Cluster slot, and different lists spread over the slots.
func (s *Store) historyKey(key string) string {
	return s.prefix + "hist:{" + key + "}"
}

// historyAppendScript adds one entry (ARGV[1] its time in ms, ARGV[2] the
// sealed entry) to the list KEYS[1], drops what is at or before ARGV[3]
// (the entry's time less the retention) and the oldest past ARGV[4]
// entries, and keeps the list at least ARGV[5] ms more: one step, so
// concurrent appends never leave a list past its max.
var historyAppendScript = goredis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
local max = tonumber(ARGV[4])
if n > max then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1
`)

// AppendHistory implements otp.HistoryStore: one script per list, since on
// a Cluster each list has a slot of its own. Every list expires a retention
// after its latest entry.
func (s *Store) AppendHistory(ctx context.Context, rec otp.HistoryRecord) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	at := ms(rec.At)
	for _, l := range rec.Lists {
		err := historyAppendScript.Run(ctx, s.client, []string{s.historyKey(l.Key)},
			at, rec.Data, at-rec.Retention.Milliseconds(), l.Max, rec.Retention.Milliseconds()).Err()
		if err != nil {
			return fmt.Errorf("redis append history: %w", err)
		}
	}
	return nil
}

// History implements otp.HistoryStore.
func (s *Store) History(ctx context.Context, key string, since, now time.Time, retention time.Duration, max int) ([]otp.HistoryItem, error) {
	lowest := "(" + strconv.FormatInt(ms(now.Add(-retention)), 10)
	if from := ms(since); from > ms(now.Add(-retention)) {
		lowest = strconv.FormatInt(from, 10)
	}
	zs, err := s.client.ZRevRangeByScoreWithScores(ctx, s.historyKey(key), &goredis.ZRangeBy{
		Min: lowest, Max: strconv.FormatInt(ms(now), 10), Count: int64(max),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis history: %w", err)
	}
	out := make([]otp.HistoryItem, 0, len(zs))
	for _, z := range zs {
		data, _ := z.Member.(string)
		out = append(out, otp.HistoryItem{At: fromMS(int64(z.Score)).In(now.Location()), Data: []byte(data)})
	}
	return out, nil
}

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
// sealed entry) to each list of KEYS, drops from each what is at or before
// ARGV[3] (the entry's time less the retention) and its oldest entries past
// its max (ARGV[4+i] for KEYS[i]), and keeps each list at least ARGV[4] ms
// more: one step, so concurrent appends never leave a list past its max.
var historyAppendScript = goredis.NewScript(`
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, ARGV[1], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[3])
  local n = redis.call('ZCARD', k)
  local max = tonumber(ARGV[4 + i])
  if n > max then redis.call('ZREMRANGEBYRANK', k, 0, n - max - 1) end
  if redis.call('PTTL', k) < tonumber(ARGV[4]) then redis.call('PEXPIRE', k, ARGV[4]) end
end
return 1
`)

// AppendHistory implements otp.HistoryStore in one round trip: on one
// server or Sentinel one historyAppendScript over every list; on a Cluster,
// where each list has a slot of its own, one script per list, all in one
// pipeline (EVAL, not EVALSHA: a NOSCRIPT inside a pipeline cannot fall
// back). Every list expires a retention after its latest entry.
func (s *Store) AppendHistory(ctx context.Context, rec otp.HistoryRecord) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	at, keep := ms(rec.At), rec.Retention.Milliseconds()
	args := func(lists ...otp.HistoryList) []any {
		a := []any{at, rec.Data, at - keep, keep}
		for _, l := range lists {
			a = append(a, l.Max)
		}
		return a
	}
	var err error
	if s.oneStep {
		keys := make([]string, len(rec.Lists))
		for i, l := range rec.Lists {
			keys[i] = s.historyKey(l.Key)
		}
		err = historyAppendScript.Run(ctx, s.client, keys, args(rec.Lists...)...).Err()
	} else {
		_, err = s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, l := range rec.Lists {
				historyAppendScript.Eval(ctx, p, []string{s.historyKey(l.Key)}, args(l)...)
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("redis append history: %w", err)
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

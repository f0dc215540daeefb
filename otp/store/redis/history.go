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
// its max (ARGV[5+i] for KEYS[i]), and keeps each list at least ARGV[4] ms
// more: one step, so concurrent appends never leave a list past its max.
// When ARGV[5] names a gateway, the last key is a challenge, which notes it
// (gw) if it is still there (gatewayNote).
var historyAppendScript = goredis.NewScript(gatewayNote + `
local lists = #KEYS
if ARGV[5] ~= '' then
  lists = lists - 1
  note_gateway(KEYS[#KEYS], ARGV[5])
end
for i = 1, lists do
  local k = KEYS[i]
  redis.call('ZADD', k, ARGV[1], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[3])
  local n = redis.call('ZCARD', k)
  local max = tonumber(ARGV[5 + i])
  if n > max then redis.call('ZREMRANGEBYRANK', k, 0, n - max - 1) end
  if redis.call('PTTL', k) < tonumber(ARGV[4]) then redis.call('PEXPIRE', k, ARGV[4]) end
end
return 1
`)

// gatewayNote notes on a challenge that still exists which gateway took
// its code.
const gatewayNote = `
local function note_gateway(key, gw)
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'gw', gw) end
end
`

// gatewayScript: KEYS challenge; ARGV gateway. A Cluster's gateway note,
// pipelined with the history scripts.
var gatewayScript = goredis.NewScript(gatewayNote + `
note_gateway(KEYS[1], ARGV[1])
return 1
`)

// AppendHistory implements otp.HistoryStore in one round trip: on one
// server or Sentinel one historyAppendScript over every list (and the
// challenge, for a send's gateway); on a Cluster, where each list has a
// slot of its own, one script per list and gatewayScript, all in one
// pipeline (EVAL, not EVALSHA: a NOSCRIPT inside a pipeline cannot fall
// back). Every list expires a retention after its latest entry.
func (s *Store) AppendHistory(ctx context.Context, rec otp.HistoryRecord) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	at, keep := ms(rec.At), rec.Retention.Milliseconds()
	args := func(gateway string, lists ...otp.HistoryList) []any {
		a := []any{at, rec.Data, at - keep, keep, gateway}
		for _, l := range lists {
			a = append(a, l.Max)
		}
		return a
	}
	var err error
	if s.oneStep {
		keys := make([]string, 0, len(rec.Lists)+1)
		for _, l := range rec.Lists {
			keys = append(keys, s.historyKey(l.Key))
		}
		gateway := ""
		if sent := rec.Sent; sent != nil && sent.Gateway != "" {
			keys, gateway = append(keys, s.keys(sent.Subject, sent.ChallengeID)[1]), sent.Gateway
		}
		err = historyAppendScript.Run(ctx, s.client, keys, args(gateway, rec.Lists...)...).Err()
	} else {
		_, err = s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, l := range rec.Lists {
				historyAppendScript.Eval(ctx, p, []string{s.historyKey(l.Key)}, args("", l)...)
			}
			if sent := rec.Sent; sent != nil && sent.Gateway != "" {
				gatewayScript.Eval(ctx, p, []string{s.keys(sent.Subject, sent.ChallengeID)[1]}, sent.Gateway)
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

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

// historyFunctions keep history lists. append_history adds one entry (at
// its time in ms, data the sealed entry) to each list of keys, after
// removing the entry it replaces (replaces; empty for none), drops from each
// what is at or before cut (the entry's time less the retention) and its
// oldest entries past its max (ARGV[max_at + i] for keys[i]; one
// ZREMRANGEBYRANK from the end, with no ZCARD first), and keeps each list
// at least keep ms more: one step, so concurrent appends never leave a
// list past its max.
const historyFunctions = `
local function append_history(keys, at, data, cut, keep, max_at, replaces)
  for i, k in ipairs(keys) do
    if replaces ~= '' then redis.call('ZREM', k, replaces) end
    redis.call('ZADD', k, at, data)
    redis.call('ZREMRANGEBYSCORE', k, '-inf', cut)
    -- all but the newest max: ranks 0 to n - max - 1, none when n <= max
    redis.call('ZREMRANGEBYRANK', k, 0, -tonumber(ARGV[max_at + i]) - 1)
    if redis.call('PTTL', k) < tonumber(keep) then redis.call('PEXPIRE', k, keep) end
  end
end
`

// historyAppendScript: KEYS the lists, then the challenge when ARGV[5] is
// '1'. ARGV the entry's time in ms, the sealed entry, the cut, the keep
// (append_history), the note flag, the gateway the challenge notes (gw,
// if it is still there: gatewayNote; empty when none took the code), the
// entry replaced (empty for none), then each list's max.
var historyAppendScript = goredis.NewScript(gatewayNote + historyFunctions + `
local lists = {}
for i = 1, #KEYS do lists[i] = KEYS[i] end
if ARGV[5] == '1' then
  note_gateway(table.remove(lists), ARGV[6])
end
append_history(lists, ARGV[1], ARGV[2], ARGV[3], ARGV[4], 7, ARGV[7])
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
	args := func(note bool, gateway string) []any {
		return append(historyArgs(rec), flag(note), gateway, string(rec.Replaces))
	}
	var err error
	if s.oneStep {
		keys := make([]string, 0, len(rec.Lists)+1)
		for _, l := range rec.Lists {
			keys = append(keys, s.historyKey(l.Key))
		}
		gateway := ""
		if sent := rec.Sent; sent != nil {
			keys, gateway = append(keys, s.keys(sent.Subject, sent.ChallengeID)[1]), sent.Gateway
		}
		a := append(args(rec.Sent != nil, gateway), listMaxes(rec.Lists)...)
		err = historyAppendScript.Run(ctx, s.client, keys, a...).Err()
	} else {
		_, err = s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, l := range rec.Lists {
				historyAppendScript.Eval(ctx, p, []string{s.historyKey(l.Key)}, append(args(false, ""), l.Max)...)
			}
			if sent := rec.Sent; sent != nil {
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

// historyArgs are append_history's time, data, cut and keep for rec.
func historyArgs(rec otp.HistoryRecord) []any {
	at, keep := ms(rec.At), rec.Retention.Milliseconds()
	return []any{at, rec.Data, at - keep, keep}
}

// listMaxes are the lists' maxes, in order.
func listMaxes(lists []otp.HistoryList) []any {
	out := make([]any, len(lists))
	for i, l := range lists {
		out[i] = l.Max
	}
	return out
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

// verifyHistoryArgs adds to verifyScript's keys and args the entry sealed
// ahead h (nil: none; on a Cluster, whose lists live in slots of their
// own, never): the lists last among the keys, then the args verifyScript
// describes from ARGV[13] on.
func (s *Store) verifyHistoryArgs(h *otp.VerifyHistory, keys []string, args []any) ([]string, []any) {
	if h == nil || !s.oneStep || len(h.Lists) == 0 {
		return keys, append(args, 0)
	}
	for _, l := range h.Lists {
		keys = append(keys, s.historyKey(l.Key))
	}
	at, keep := ms(h.At), h.Retention.Milliseconds()
	args = append(args, len(h.Lists), h.PhoneHash, h.HistoryKey, h.Gateway, at, at-keep, keep, h.OK, h.Wrong, h.Exhausted)
	return keys, append(args, listMaxes(h.Lists)...)
}

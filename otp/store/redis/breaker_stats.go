package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// breakerStatsScript: KEYS one key per scope (all under the {brk} hash
// tag, so one slot on a Cluster); ARGV bucket, buckets. Returns the sends
// and conversions of the window per scope, two numbers each. It only
// reads, so it runs as one atomic read of every scope.
var breakerStatsScript = goredis.NewScript(breakerFunctions + `
local bucket, buckets = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
local fields = breaker_fields(bucket, buckets, {})
for _, k in ipairs(KEYS) do
  local sends, conv = breaker_window(k, fields, buckets)
  table.insert(out, sends); table.insert(out, conv)
end
return out
`)

// BreakerStats implements otp.BreakerStore.
func (s *Store) BreakerStats(ctx context.Context, scopes []string, now time.Time, p otp.BreakerPolicy) ([]otp.BreakerTally, error) {
	out := make([]otp.BreakerTally, len(scopes))
	for i, sc := range scopes {
		out[i].Scope = sc
	}
	if len(scopes) == 0 || p.Buckets < 1 || p.Window < time.Duration(p.Buckets)*time.Millisecond {
		return out, nil
	}
	v, err := breakerStatsScript.Run(ctx, s.client, s.scopeKeys(scopes), p.BucketOf(now), p.Buckets).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redis breaker stats: %w", err)
	}
	if len(v) != 2*len(scopes) {
		return nil, fmt.Errorf("redis breaker stats: %d numbers for %d scopes", len(v), len(scopes))
	}
	for i := range out {
		out[i].Sends, out[i].Conversions = int(v[2*i]), int(v[2*i+1])
	}
	return out, nil
}

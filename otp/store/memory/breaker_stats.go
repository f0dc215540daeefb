package memory

import (
	"context"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// BreakerStats implements otp.BreakerStore: one read under the breaker's
// mutex, so the scopes' counts are of one moment.
func (s *Store) BreakerStats(ctx context.Context, scopes []string, now time.Time, p otp.BreakerPolicy) ([]otp.BreakerTally, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Buckets < 1 || p.Window < time.Duration(p.Buckets)*time.Millisecond {
		return make([]otp.BreakerTally, len(scopes)), nil
	}
	bucket := p.BucketOf(now)
	b := &s.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]otp.BreakerTally, len(scopes))
	for i, name := range scopes {
		out[i].Scope = name
		if sc := b.scopes[name]; sc != nil {
			t := sc.tally(bucket, p.Buckets)
			out[i].Sends, out[i].Conversions = t.sends, t.conversions
		}
	}
	return out, nil
}

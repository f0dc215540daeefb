package otp_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestBreakerWatchingPopulations runs populations of one Japanese prefix
// through the service at the breaker's defaults (judged from 10 sends,
// below 20% blocked) for three hours, asking before each send whether the
// breaker is watching the number. Real people (50% to 90% verified), large
// or small, are never watched; a large prefix that hardly verifies is
// watched from half of min_sends, before it is blocked; a small one that
// never reaches half of min_sends in a window is not.
func TestBreakerWatchingPopulations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		conversion int // percent
		gap        time.Duration
		// firstWatched is the user before whose send the breaker first
		// watches the prefix; -1 never.
		firstWatched int
	}{
		{"a large prefix that verifies 90% is never watched", 90, time.Minute, -1},
		{"a large prefix that verifies 70% is never watched", 70, time.Minute, -1},
		{"a large prefix that verifies 50% is never watched", 50, time.Minute, -1},
		{"a small prefix that verifies 90% is never watched", 90, 30 * time.Minute, -1},
		{"a small prefix that verifies 70% is never watched", 70, 30 * time.Minute, -1},
		{"a small prefix that verifies 50% is never watched", 50, 30 * time.Minute, -1},
		{"a large prefix that verifies 10% is watched from its 5th unverified send", 10, time.Minute, 5},
		{"a large prefix that verifies nothing is watched from its 5th send", 0, time.Minute, 5},
		{"a small prefix below half of min_sends is never watched", 0, 30 * time.Minute, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, breakerConfig(false, nil), nil)
			first, blockedAt := -1, -1
			for i, start := 0, f.clock.Now(); f.clock.Now().Before(start.Add(3 * time.Hour)); i++ {
				at := f.clock.Now()
				e164 := fmt.Sprintf("+81901234%04d", i)
				watched, scope, err := f.svc.BreakerWatching(t.Context(), otp.Phone{E164: e164, Region: "JP"})
				if err != nil {
					t.Fatal(err)
				}
				if watched && first < 0 {
					first = i
					if scope != "prefix:+81901234" {
						t.Errorf("watched scope %q; want the prefix prefix:+81901234", scope)
					}
				}
				if !watched && scope != "" {
					t.Errorf("user %d: not watched yet scope %q", i, scope)
				}
				err = f.stepUp(t, fmt.Sprint("user-", i), e164, "JP", "", verifiesAt(i, tc.conversion), time.Minute)
				var be *otp.BlockedError
				switch {
				case errors.As(err, &be):
					if blockedAt < 0 {
						blockedAt = i
					}
				case err != nil:
					t.Fatalf("user %d: %v", i, err)
				}
				f.clock.Advance(at.Add(tc.gap).Sub(f.clock.Now()))
			}
			if first != tc.firstWatched {
				t.Fatalf("first watched before user %d's send; want %d", first, tc.firstWatched)
			}
			if blockedAt >= 0 && (first < 0 || first >= blockedAt) {
				t.Fatalf("blocked at user %d but first watched at %d: the watch must come first", blockedAt, first)
			}
		})
	}
}

// TestBreakerWatchingOffAndAbroad: with the breaker off nothing is watched
// however the numbers behave; a foreign country is watched as a whole when
// its numbers spread over prefixes and ranges.
func TestBreakerWatchingOffAndAbroad(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		cfg := breakerConfig(false, nil)
		if !on {
			cfg.Breaker = otp.BreakerPolicy{}
		}
		f := newFixture(t, cfg, nil)
		for i := range 6 {
			e164 := fmt.Sprintf("+4477%02d00%04d", i*7, i)
			if err := f.stepUp(t, fmt.Sprint("gb-", i), e164, "GB", "", false, 0); err != nil {
				t.Fatalf("breaker on %v, send %d: %v", on, i, err)
			}
			f.clock.Advance(time.Minute)
		}
		watched, scope, err := f.svc.BreakerWatching(t.Context(), otp.Phone{E164: "+447799001234", Region: "GB"})
		if err != nil {
			t.Fatal(err)
		}
		if on && (!watched || scope != "country:GB") {
			t.Errorf("6 unverified sends spread over Britain: watched %v %q; want the country", watched, scope)
		}
		if !on && (watched || scope != "") {
			t.Errorf("breaker off: watched %v %q; want nothing", watched, scope)
		}
	}
}

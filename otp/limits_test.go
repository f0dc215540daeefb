package otp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

var (
	jpMobile = otp.Phone{E164: "+819012345678", Region: "JP", Type: "mobile"}
	ggMobile = otp.Phone{E164: "+447911123456", Region: "GG", Type: "mobile"}
	gbFixed  = otp.Phone{E164: "+442079460000", Region: "GB", Type: "fixed_line"}
	intlVoIP = otp.Phone{E164: "+8821612345678", Region: "001", Type: "voip"}
)

func TestDefaultSendLimits(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, rootKey)
	got := otp.DefaultSendLimits().Checks(keys, jpMobile, "alice", "192.0.2.10")
	want := []otp.LimitCheck{
		{Name: "phone", Key: keys.LimitKey("phone", "+819012345678"), Max: 5, Window: time.Hour},
		{Name: "identity", Key: keys.LimitKey("identity", "alice"), Max: 10, Window: time.Hour},
		{Name: "ip", Key: keys.LimitKey("ip", "192.0.2.10"), Max: 20, Window: time.Hour},
		{Name: "prefix", Key: keys.LimitKey("prefix", "+81901234"), Max: 20, Window: time.Hour},
		{Name: "country", Key: keys.LimitKey("country", "JP"), Max: 500, Window: time.Hour},
		{Name: "daily_budget", Key: keys.LimitKey("daily_budget", ""), Max: 10000, Window: 24 * time.Hour},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d checks %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("check %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := otp.DefaultSendLimits().Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
}

func TestSendLimitChecks(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, rootKey)
	limits := otp.DefaultSendLimits()
	keyOf := func(phone otp.Phone, identity, ip, name string) string {
		for _, c := range limits.Checks(keys, phone, identity, ip) {
			if c.Name == name {
				return c.Key
			}
		}
		return ""
	}
	same := func(t *testing.T, name string, a, b string) {
		t.Helper()
		if a == "" || a != b {
			t.Errorf("%s: keys %q and %q, want the same", name, a, b)
		}
	}
	differ := func(t *testing.T, name string, a, b string) {
		t.Helper()
		if a == "" || b == "" || a == b {
			t.Errorf("%s: keys %q and %q, want two different ones", name, a, b)
		}
	}
	t.Run("numbers that differ only in their last 4 digits share a prefix and not a phone", func(t *testing.T) {
		neighbour := otp.Phone{E164: "+819012349999", Region: "JP"}
		same(t, "prefix", keyOf(jpMobile, "a", "", "prefix"), keyOf(neighbour, "a", "", "prefix"))
		differ(t, "phone", keyOf(jpMobile, "a", "", "phone"), keyOf(neighbour, "a", "", "phone"))
		differ(t, "prefix", keyOf(jpMobile, "a", "", "prefix"), keyOf(otp.Phone{E164: "+819012355678", Region: "JP"}, "a", "", "prefix"))
	})
	t.Run("a number is counted in its region, or its calling code where it has none", func(t *testing.T) {
		same(t, "country", keyOf(jpMobile, "a", "", "country"), keys.LimitKey("country", "JP"))
		same(t, "country", keyOf(ggMobile, "a", "", "country"), keys.LimitKey("country", "GG"))
		differ(t, "country", keyOf(ggMobile, "a", "", "country"), keyOf(gbFixed, "a", "", "country"))
		same(t, "country", keyOf(intlVoIP, "a", "", "country"), keys.LimitKey("country", "+882"))
		same(t, "country", keyOf(otp.Phone{E164: "+819012345678"}, "a", "", "country"), keys.LimitKey("country", "JP"))
	})
	t.Run("IPv6 clients are counted by their /64 and mapped IPv4 as IPv4", func(t *testing.T) {
		same(t, "ip", keyOf(jpMobile, "a", "2001:db8:1:2::1", "ip"), keyOf(jpMobile, "a", "2001:db8:1:2:ffff::9", "ip"))
		differ(t, "ip", keyOf(jpMobile, "a", "2001:db8:1:2::1", "ip"), keyOf(jpMobile, "a", "2001:db8:1:3::1", "ip"))
		same(t, "ip", keyOf(jpMobile, "a", "::ffff:192.0.2.10", "ip"), keyOf(jpMobile, "a", "192.0.2.10", "ip"))
		same(t, "ip", keyOf(jpMobile, "a", "192.0.2.10:5555", "ip"), keyOf(jpMobile, "a", "192.0.2.10", "ip"))
		differ(t, "ip", keyOf(jpMobile, "a", "192.0.2.10", "ip"), keyOf(jpMobile, "a", "192.0.2.11", "ip"))
	})
	t.Run("no key shows the number, the identity or the address", func(t *testing.T) {
		for _, c := range limits.Checks(keys, jpMobile, "alice@example.com", "192.0.2.10") {
			for _, secret := range []string{"9012345678", "901234", "5678", "alice", "192.0.2"} {
				if strings.Contains(c.Key, secret) {
					t.Errorf("%s key %q shows %q", c.Name, c.Key, secret)
				}
			}
		}
	})
	t.Run("a zero count switches its limit off and no address skips the address limit", func(t *testing.T) {
		l := limits
		l.PerPhone, l.DailyBudget = 0, 0
		var names []string
		for _, c := range l.Checks(keys, jpMobile, "alice", "") {
			names = append(names, c.Name)
		}
		if got := strings.Join(names, " "); got != "identity prefix country" {
			t.Fatalf("checks %q, want identity prefix country", got)
		}
		if got := (otp.SendLimits{}).Checks(keys, jpMobile, "alice", "192.0.2.10"); len(got) != 0 {
			t.Fatalf("zero limits give checks %+v", got)
		}
	})
}

func TestSendLimitsValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(*otp.SendLimits)
		want   string
	}{
		{"the defaults are valid", func(*otp.SendLimits) {}, ""},
		{"every limit switched off is valid", func(l *otp.SendLimits) { *l = otp.SendLimits{} }, ""},
		{"a daily budget alone needs no window", func(l *otp.SendLimits) { *l = otp.SendLimits{DailyBudget: 5} }, ""},
		{"a negative count is refused", func(l *otp.SendLimits) { l.PerIP = -1 }, "per_ip -1"},
		{"a negative daily budget is refused", func(l *otp.SendLimits) { l.DailyBudget = -1 }, "daily_budget -1"},
		{"a per-phone limit without a window is refused", func(l *otp.SendLimits) { l.Window = 0 }, "window 0s"},
		{"a window under a minute is refused", func(l *otp.SendLimits) { l.Window = 59 * time.Second }, "window 59s"},
		{"a window over a day is refused", func(l *otp.SendLimits) { l.Window = 25 * time.Hour }, "window 25h0m0s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := otp.DefaultSendLimits()
			tc.change(&l)
			err := l.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			cfg := otp.DefaultConfig()
			cfg.Limits = l
			if (cfg.Validate() == nil) != (tc.want == "") {
				t.Fatalf("Config.Validate disagrees with SendLimits.Validate: %v", cfg.Validate())
			}
		})
	}
}

func TestLimitWindowBounds(t *testing.T) {
	t.Parallel()
	jst := time.FixedZone("JST", 9*3600)
	cases := []struct {
		name       string
		now        time.Time
		window     time.Duration
		start, end time.Time
	}{
		{"an hourly window runs from the hour to the next", time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC), time.Hour,
			time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)},
		{"an instant on the hour starts the new window", time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC), time.Hour,
			time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 11, 0, 0, 0, time.UTC)},
		{"a daily window runs from midnight UTC to midnight UTC", time.Date(2026, 4, 1, 23, 59, 59, 0, time.UTC), 24 * time.Hour,
			time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
		{"a daily window follows UTC whatever the clock's zone", time.Date(2026, 4, 2, 8, 0, 0, 0, jst), 24 * time.Hour,
			time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
		{"a window before 1970 is floored, not rounded towards zero", time.Date(1969, 12, 31, 23, 30, 0, 0, time.UTC), time.Hour,
			time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start, end := otp.LimitCheck{Window: tc.window}.Bounds(tc.now)
			if !start.Equal(tc.start) || !end.Equal(tc.end) {
				t.Fatalf("got %s to %s, want %s to %s", start, end, tc.start, tc.end)
			}
		})
	}
}

func TestRateLimitErrorMessage(t *testing.T) {
	t.Parallel()
	err := &otp.RateLimitError{Limit: "daily_budget", RetryAt: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)}
	if got, want := err.Error(), "too many codes sent (daily_budget limit); retry at 2026-04-02T00:00:00Z"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

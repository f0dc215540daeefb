package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestHistoryOptions: history_retention and history_max set the service's
// history policy, off keeps none, and a wrong value is refused naming its
// Caddyfile line and what was expected.
func TestHistoryOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lines []string
		want  otp.HistoryPolicy
	}{
		{nil, otp.HistoryPolicy{Retention: 7 * 24 * time.Hour, MaxPerList: 1000}},
		{[]string{"history_retention 2d", "history_max 50"}, otp.HistoryPolicy{Retention: 48 * time.Hour, MaxPerList: 50}},
		{[]string{"history_retention off"}, otp.HistoryPolicy{}},
	} {
		h, err := cfParse(cfWith(tc.lines...))
		if err != nil {
			t.Fatalf("%q: %v", tc.lines, err)
		}
		if got := h.otpConfig().History; got != tc.want {
			t.Errorf("%q: policy %+v, want %+v", tc.lines, got, tc.want)
		}
	}
	for _, tc := range []struct {
		lines []string
		at    string
		words string
	}{
		{[]string{"history_retention 0"}, "Testfile:4", "expected a duration such as 7d, at most 366d, or off"},
		{[]string{"history_retention soon"}, "Testfile:4", `history_retention "soon": expected a duration`},
		{[]string{"code_ttl 5m", "history_retention 400d"}, "Testfile:5", "history_retention 400d: expected a duration such as 7d, more than 0 and at most 366d"},
		{[]string{"history_max 0"}, "Testfile:4", `history_max "0": expected a whole number from 1 to 100000`},
		{[]string{"history_max many"}, "Testfile:4", `history_max "many": expected a whole number from 1 to 100000`},
		{[]string{"history_max 100001"}, "Testfile:4", "history_max 100001: expected a whole number from 1 to 100000"},
		{[]string{"history_retention off", "history_max 5"}, "Testfile:4", "history_retention off: expected no history_retention duration and no history_max"},
	} {
		_, err := cfParse(cfWith(tc.lines...))
		if err == nil || !strings.Contains(err.Error(), tc.words) || !strings.HasSuffix(err.Error(), ", at "+tc.at) {
			t.Errorf("%q: %v; want %q at %s", tc.lines, err, tc.words, tc.at)
		}
	}
}

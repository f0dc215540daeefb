package otp

import (
	"strings"
	"testing"
)

// TestHistoryPrefixOf: a prefix is taken as it is, a whole number gives
// its prefix, and a prefix a digit short or long of any valid number is
// refused with what a prefix is, since the store's keyed lists would
// answer it with an empty history.
func TestHistoryPrefixOf(t *testing.T) {
	for typed, want := range map[string]string{
		"+44770090":      "+44770090",  // of +447700900123
		"+447700900123":  "+44770090",  // the whole number
		"+81901234":      "+81901234",  // of +819012345678
		"+819012345678":  "+81901234",  // the whole number
		"+1202555":       "+1202555",   // of +12025550123
		"+12025550123":   "+1202555",   // the whole number
		"+3361234":       "+3361234",   // of +33612345678
		"+4915112345678": "+491511234", // a whole German mobile
	} {
		got, err := HistoryPrefixOf(typed)
		if err != nil || got != want {
			t.Errorf("HistoryPrefixOf(%q) = %q, %v; want %q", typed, got, err, want)
		}
	}
	for _, typed := range []string{"+447700900", "+4477009", "+8190123", "819012", "+44 7700 900", "+0447700", "", "+44770090x"} {
		if got, err := HistoryPrefixOf(typed); err == nil {
			t.Errorf("HistoryPrefixOf(%q) = %q, want an error", typed, got)
		} else if !strings.Contains(err.Error(), "+44770090 for +447700900123") {
			t.Errorf("HistoryPrefixOf(%q): %v, want it to say what a prefix is", typed, err)
		}
	}
}

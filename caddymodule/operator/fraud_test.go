package operator

import (
	"bytes"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// TestUnblockTakesTheScopeAsStatusShowsIt: an operator may paste what
// status lists (the kind, the x's for the digits left out).
func TestUnblockTakesTheScopeAsStatusShowsIt(t *testing.T) {
	for in, want := range map[string]string{
		"+44740012":            "+44740012",
		"+44740012xxxx":        "+44740012",
		"prefix:+44740012xxxx": "+44740012",
		" range:+447400xxxxxx": "+447400",
		"country:GB":           "GB",
		"gb":                   "gb",
	} {
		if got := unblockTarget(in); got != want {
			t.Errorf("unblockTarget(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusTextListsTheBlocks(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		fg   *fraudGuardStatus
		want []string
	}{
		{nil, []string{"fraud guard  unknown"}},
		{&fraudGuardStatus{}, []string{"fraud guard  off"}},
		{&fraudGuardStatus{On: true, Blocks: []blockStatus{{Scope: "range:+447400xxxxxx", Kind: "range", Until: now.Add(time.Hour)}}},
			[]string{"fraud guard  on, 1 block in force", "range:+447400xxxxxx  until 2026-12-03T11:00:00Z (in 1h0m)"}},
	} {
		var b bytes.Buffer
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		tc.fg.text(tw, now)
		tw.Flush()
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("status of %+v:\n%s\nwant %q", tc.fg, b.String(), w)
			}
		}
	}
}

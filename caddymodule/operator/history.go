package operator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// historyResult is the send history of one identity or one number prefix,
// newest first. Numbers are masked: the store holds no other form.
type historyResult struct {
	Identity string `json:"identity,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	// Since is the oldest time asked for; Retention (a Go duration) how
	// far back the store keeps anything.
	Since     time.Time          `json:"since"`
	Retention string             `json:"retention"`
	Entries   []otp.HistoryEntry `json:"entries"`
}

// history reads the send history of the request's identity or prefix.
func history(ctx context.Context, h Handler, req request) (result, error) {
	if (req.Identity == "") == (req.Prefix == "") {
		return nil, &operatorError{"expected an identity or --prefix <prefix>, one of them: caddy sms-stepup history alice, caddy sms-stepup history --prefix +44770090", nil}
	}
	prefix := req.Prefix
	if prefix != "" {
		p, err := otp.HistoryPrefixOf(prefix)
		if err != nil {
			return nil, &operatorError{err.Error(), err}
		}
		prefix = p
	}
	svc := h.Service()
	policy := svc.HistoryPolicy()
	if !policy.On() {
		return nil, &operatorError{"this handler keeps no send history (history_retention off)", otp.ErrNoHistory}
	}
	now := h.Now()
	since := now.Add(-policy.Retention)
	if req.Since != "" {
		d, _ := caddy.ParseDuration(req.Since)
		since = later(since, now.Add(-d))
	}
	entries, err := svc.History(ctx, otp.HistoryQuery{Identity: req.Identity, Prefix: prefix, Since: since})
	if err != nil && !errors.Is(err, otp.ErrStoreUnavailable) {
		err = &operatorError{err.Error(), err}
	}
	if entries == nil {
		entries = []otp.HistoryEntry{}
	}
	return historyResult{Identity: req.Identity, Prefix: prefix, Since: since.UTC(), Retention: policy.Retention.String(), Entries: entries}, err
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (r historyResult) text(w io.Writer, now time.Time) {
	who := r.Identity
	if who == "" {
		who = "prefix " + r.Prefix
	}
	fmt.Fprintf(w, "history of %s since %s (%s ago), newest first: %d entries\n", who, r.Since.Format(time.RFC3339),
		roughly(now.Sub(r.Since)), len(r.Entries))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range r.Entries {
		outcome := e.Outcome
		if e.Reason != "" {
			outcome += " (" + e.Reason + ")"
		}
		var more []string
		if r.Identity == "" {
			more = append(more, "identity "+e.Identity)
		}
		if e.Voice {
			more = append(more, "call")
		}
		if e.Gateway != "" {
			more = append(more, "via "+e.Gateway)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tchallenge %s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Event, outcome,
			cmp.Or(e.Phone, "-"), cmp.Or(e.Challenge, "-"), strings.Join(more, ", "))
	}
	tw.Flush()
}

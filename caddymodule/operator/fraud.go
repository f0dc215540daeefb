package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The fraud guard's part of the operator actions: the blocks in force,
// which status lists, and unblock, which lifts one.

// fraudGuardStatus is the fraud guard's part of status.
type fraudGuardStatus struct {
	On     bool          `json:"on"`
	Blocks []blockStatus `json:"blocks"`
}

// blockStatus is one block in force. Scope is masked as in the audit
// log: "prefix:+4477009001xxxx", "range:+4477009xxxxxx", "country:GB".
type blockStatus struct {
	Scope string    `json:"scope"`
	Kind  string    `json:"kind"`
	Until time.Time `json:"until"`
	// Repeat counts the blocks before this one that it repeats.
	Repeat int `json:"repeat"`
}

// fraudGuardOf reads the blocks in force.
func fraudGuardOf(ctx context.Context, svc *otp.Service) (*fraudGuardStatus, error) {
	out := &fraudGuardStatus{On: svc.Config().Breaker.On(), Blocks: []blockStatus{}}
	blocks, err := svc.BreakerBlocks(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range blocks {
		out.Blocks = append(out.Blocks, blockStatus{Scope: caddymodule.MaskedScope(b.Scope), Kind: b.Kind(), Until: b.Until.UTC(), Repeat: b.Level})
	}
	return out, nil
}

// text writes the fraud guard's lines of status.
func (fg *fraudGuardStatus) text(tw *tabwriter.Writer, now time.Time) {
	switch {
	case fg == nil:
		fmt.Fprintf(tw, "fraud guard\tunknown\n")
		return
	case !fg.On:
		fmt.Fprintf(tw, "fraud guard\toff\n")
		return
	}
	noun := "blocks"
	if len(fg.Blocks) == 1 {
		noun = "block"
	}
	fmt.Fprintf(tw, "fraud guard\ton, %d %s in force\n", len(fg.Blocks), noun)
	for _, b := range fg.Blocks {
		fmt.Fprintf(tw, "\t  %s\tuntil %s (in %s)\n", b.Scope, b.Until.Format(time.RFC3339), roughly(b.Until.Sub(now)))
	}
}

type unblockResult struct {
	Target string `json:"target"`
	// Lifted are the scopes whose blocks were lifted, masked.
	Lifted []string `json:"lifted"`
	// StillBlocked are the blocks in force that still cover numbers of the
	// target: a range around a prefix, or prefixes inside a range. Each
	// is lifted by its own unblock.
	StillBlocked []blockStatus `json:"still_blocked"`
}

// unblock lifts the fraud guard's blocks on a prefix, range or country,
// and forgets their counts so they start afresh. It also says which blocks
// still cover the target's numbers, since lifting a prefix inside a
// blocked range lets none of them through.
func unblock(ctx context.Context, h Handler, req request) (result, error) {
	target := unblockTarget(req.Target)
	out := unblockResult{Target: target, Lifted: []string{}, StillBlocked: []blockStatus{}}
	svc := h.Service()
	lifted, err := svc.Unblock(ctx, target)
	for _, s := range lifted {
		out.Lifted = append(out.Lifted, caddymodule.MaskedScope(s))
	}
	if err != nil && !errors.Is(err, otp.ErrNotBlocked) {
		return out, err
	}
	blocks, listErr := svc.BreakerBlocks(ctx)
	if listErr != nil {
		return out, listErr
	}
	out.StillBlocked = covering(blocks, target)
	if errors.Is(err, otp.ErrNotBlocked) {
		msg := "no fraud guard block on " + target + " (caddy sms-stepup status lists the blocks)"
		if len(out.StillBlocked) > 0 {
			msg = "no fraud guard block on " + target + " itself; it is covered by " + out.stillText()
		}
		err = &operatorError{msg, err}
	}
	return out, err
}

// covering returns the prefix and range blocks whose numbers overlap the
// target's: one is a prefix of the other.
func covering(blocks []otp.BreakerBlock, target string) []blockStatus {
	var out []blockStatus
	for _, b := range blocks {
		if b.Kind() == otp.BreakerCountry || !strings.HasPrefix(target, "+") {
			continue
		}
		if v := b.Value(); strings.HasPrefix(target, v) || strings.HasPrefix(v, target) {
			out = append(out, blockStatus{Scope: caddymodule.MaskedScope(b.Scope), Kind: b.Kind(), Until: b.Until.UTC(), Repeat: b.Level})
		}
	}
	return out
}

// stillText names the blocks that still cover the target, each with the
// command that lifts it.
func (r unblockResult) stillText() string {
	parts := make([]string, len(r.StillBlocked))
	for i, b := range r.StillBlocked {
		parts[i] = fmt.Sprintf("%s until %s (caddy sms-stepup unblock %s)", b.Scope, b.Until.Format(time.RFC3339), unblockTarget(b.Scope))
	}
	return strings.Join(parts, "; ")
}

// unblockTarget reads the target as status shows it too: a scope's kind
// and the x's that stand for the digits a prefix leaves out may be given.
func unblockTarget(t string) string {
	t = strings.TrimSpace(t)
	if _, v, ok := strings.Cut(t, ":"); ok {
		t = v
	}
	return strings.TrimRight(t, "xX")
}

func (r unblockResult) auditFields() []zap.Field {
	return []zap.Field{zap.String("target", r.Target), zap.Strings("lifted", r.Lifted)}
}

func (r unblockResult) text(w io.Writer, _ time.Time) {
	fmt.Fprintf(w, "unblocked %s: lifted %s; its counts start afresh\n", r.Target, strings.Join(r.Lifted, ", "))
	if len(r.StillBlocked) > 0 {
		fmt.Fprintf(w, "still blocked: %s\n", r.stillText())
	}
}

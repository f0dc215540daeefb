package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// Issue implements otp.Store. On one server (or Sentinel's master) a send is
// one sendScript: one round trip that decides and counts everything, the
// breaker's part too when the request has one (IssueGuarded). On a Cluster
// the send limits' counters live in other slots than the identity, so a
// send takes ordered steps, each atomic on its slot: a dry run of
// sendScript on the identity (a locked-out, cooling-down or spent send is
// refused there, counting nothing), then one limitsScript per counter in
// request order, then sendScript without the limits. A step that refuses
// lowers the counters raised before it (refundScript). Meanwhile another
// send may find a counter briefly fuller than it will be and be refused;
// and a send whose last step another send pre-empted (its cooldown began in
// between) is refused after its counters were raised, and lowers them. No
// counter ever lets more than its max through.
func (s *Store) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	req.History, req.CooldownHistory = nil, nil // only IssueFull keeps them
	res, err := s.issue(ctx, req)
	return res.Challenge, err
}

// IssueGuarded implements otp.BreakerStore. On one server or Sentinel the
// breaker's check and count run inside the send's one sendScript. On a
// Cluster, whose breaker keys share the {brk} slot, they are two more
// ordered steps around Issue's: breakerBlockedScript first (a blocked
// scope refuses the send before anything is counted), breakerCountScript
// last (which refuses the send, after it was issued, if a concurrent send
// set a block in between).
func (s *Store) IssueGuarded(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	if req.Breaker == nil {
		return otp.IssueResult{}, errors.New("redis issue: a guarded issue without its breaker part")
	}
	req.History, req.CooldownHistory = nil, nil // only IssueFull keeps them
	return s.issue(ctx, req)
}

// IssueFull implements otp.ResultIssuer. On one server or Sentinel the
// send's history entry (req.History) is kept inside the send's one
// sendScript; on a Cluster, whose history lists live in slots of their
// own, by one more step after the send's (AppendHistory).
func (s *Store) IssueFull(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	res, err := s.issue(ctx, req)
	if req.History == nil || s.oneStep {
		return res, err
	}
	rec := *req.History
	var cd *otp.CooldownError
	switch {
	case err == nil && res.Challenge.ID == req.Challenge.ID:
		rec.Sent = &otp.SentGateway{Subject: req.Challenge.Subject, ChallengeID: req.Challenge.ID, Gateway: sentGateway(req.History)}
	case errors.As(err, &cd) && req.CooldownHistory != nil:
		rec.Data, rec.Sent = req.CooldownHistory, nil
	default:
		return res, err
	}
	// A failed append leaves the entry to the service, after the send.
	res.HistoryKept = s.AppendHistory(ctx, rec) == nil
	return res, err
}

// KeepsHistoryInIssue implements otp.ResultIssuer: true on one server or
// Sentinel, where the entry rides in the send's round trip.
func (s *Store) KeepsHistoryInIssue() bool { return s.oneStep }

// sentGateway is the gateway a send's entry sealed ahead names.
func sentGateway(rec *otp.HistoryRecord) string {
	if rec.Sent == nil {
		return ""
	}
	return rec.Sent.Gateway
}

func (s *Store) issue(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	if err := req.Validate(); err != nil {
		return otp.IssueResult{}, err
	}
	if s.oneStep {
		return s.send(ctx, req, req.Limits, req.Breaker, req.History, false)
	}
	b := req.Breaker
	if b != nil {
		blk, blocked, err := s.BreakerBlocked(ctx, b.Scopes, req.Now)
		if err != nil {
			return otp.IssueResult{}, err
		}
		if blocked {
			return otp.IssueResult{}, &otp.BlockedError{Scope: blk.Scope, Until: blk.Until}
		}
	}
	res, err := s.issueInSteps(ctx, req)
	if err != nil || b == nil {
		return res, err
	}
	counted, err := s.BreakerCount(ctx, otp.BreakerCountRequest{
		Ref: res.Challenge.ID, Scopes: b.Scopes, Now: req.Now, RefTTL: b.RefTTL, Policy: b.Policy,
	})
	if err != nil {
		return res, err
	}
	res.NewBlocks = counted.NewBlocks
	if counted.Blocked != nil {
		return res, &otp.BlockedError{Scope: counted.Blocked.Scope, Until: counted.Blocked.Until}
	}
	return res, nil
}

// issueInSteps is a Cluster's send without the breaker (see Issue).
func (s *Store) issueInSteps(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	if len(req.Limits) == 0 {
		return s.send(ctx, req, nil, nil, nil, false)
	}
	if res, err := s.send(ctx, req, nil, nil, nil, true); err != nil {
		return res, err
	}
	raised, err := s.countEach(ctx, req.Limits, req.Now)
	if err != nil {
		return otp.IssueResult{}, err
	}
	res, err := s.send(ctx, req, nil, nil, nil, false)
	if err != nil {
		s.refund(ctx, raised)
		return res, err
	}
	return res, nil
}

// send runs sendScript with the counters of limits, the breaker's part
// brk and the history entry hist (nil: none); a dry run returns no
// challenge.
func (s *Store) send(ctx context.Context, req otp.IssueRequest, limits []otp.LimitCheck, brk *otp.IssueBreaker, hist *otp.HistoryRecord, dry bool) (otp.IssueResult, error) {
	c := req.Challenge
	keys := s.keys(c.Subject, c.ID)
	fallback := keys[1]
	if req.FallbackID != "" {
		fallback = s.keys(c.Subject, req.FallbackID)[1]
	}
	keys = append(keys, fallback)
	args := []any{ms(req.Now), flag(req.Resend), req.MaxSends,
		req.CooldownBase.Milliseconds(), req.CooldownMax.Milliseconds(), req.SendWindow.Milliseconds(),
		c.SessionHash, c.PhoneHash, c.PhoneMasked, string(c.CodeMAC),
		ms(c.CreatedAt), ms(c.SentAt), ms(c.ExpiresAt), c.MaxAttempts, flag(req.Voice), req.MaxCalls,
		flag(dry), string(req.FallbackMAC), req.JitterPermille, c.HistoryKey, len(limits)}
	for _, l := range limits {
		keys = append(keys, s.limitKey(l.Name, l.Key))
		args = append(args, windowField(l.Bounds(req.Now)), l.Max)
	}
	if brk == nil {
		args = append(args, 0)
	} else {
		ref := s.breakerBase() + "r:" + c.ID
		fallbackRef := ref
		if req.FallbackID != "" {
			fallbackRef = s.breakerBase() + "r:" + req.FallbackID
		}
		keys = append(append(keys, ref, fallbackRef, s.breakerBase()+"blocks"), s.scopeKeys(brk.Scopes)...)
		args = append(append(args, len(brk.Scopes)), breakerParams(brk.Policy, req.Now, brk.RefTTL)...)
		for _, sc := range brk.Scopes {
			args = append(args, sc)
		}
	}
	if hist == nil {
		args = append(args, 0)
	} else {
		for _, l := range hist.Lists {
			keys = append(keys, s.historyKey(l.Key))
		}
		args = append(append(args, len(hist.Lists)), historyArgs(*hist)...)
		args = append(append(args, sentGateway(hist), string(req.CooldownHistory)), listMaxes(hist.Lists)...)
	}
	res, err := sendScript.Run(ctx, s.client, keys, args...).Slice()
	if err != nil {
		return otp.IssueResult{}, fmt.Errorf("redis issue: %w", err)
	}
	switch status, _ := res[0].(string); status {
	case "ok":
		if dry {
			return otp.IssueResult{}, nil
		}
		id := c.ID
		if mode, _ := res[1].(string); mode == "create" && req.Resend {
			id = req.FallbackID
		}
		fields, _ := res[2].([]any)
		ch, err := parseChallenge(c.Subject, id, fields)
		if err != nil {
			return otp.IssueResult{}, err
		}
		out := otp.IssueResult{Challenge: ch, HistoryKept: len(res) > 4 && toInt(res[4]) == 1}
		if brk != nil && len(res) > 3 {
			blocks, _ := res[3].([]any)
			v := make([]int64, len(blocks))
			for i, b := range blocks {
				v[i] = toInt(b)
			}
			out.NewBlocks = newBlocks(brk.Scopes, v)
		}
		return out, nil
	case "blocked":
		if i := int(toInt(res[1])); brk != nil && i >= 1 && i <= len(brk.Scopes) {
			return otp.IssueResult{}, &otp.BlockedError{Scope: brk.Scopes[i-1], Until: fromMS(toInt(res[2]))}
		}
	case "locked":
		return otp.IssueResult{}, &otp.LockedError{Until: fromMS(toInt(res[1]))}
	case "cooldown":
		out := shownIn(req, res, 2)
		out.HistoryKept = len(res) > 3 && toInt(res[3]) == 1
		return out, &otp.CooldownError{RetryAt: fromMS(toInt(res[1]))}
	case "notfound":
		return otp.IssueResult{}, otp.ErrChallengeNotFound
	case "sendlimit":
		return otp.IssueResult{}, otp.ErrSendLimit
	case "calllimit":
		return shownIn(req, res, 1), otp.ErrCallLimit
	case "limit":
		if i := int(toInt(res[1])); i >= 1 && i <= len(limits) {
			return shownIn(req, res, 2), refusedBy(limits[i-1], req.Now)
		}
	}
	return otp.IssueResult{}, fmt.Errorf("redis issue: unexpected reply %v", res)
}

// shownIn is the result of a refused resend whose reply holds, at i, the
// fields of the challenge it named (sendScript's shown): what
// Store.Challenge would return at req.Now. Unread when the reply has none
// or they do not parse.
func shownIn(req otp.IssueRequest, res []any, i int) otp.IssueResult {
	if !req.Resend || len(res) <= i {
		return otp.IssueResult{}
	}
	fields, ok := res[i].([]any)
	if !ok {
		return otp.IssueResult{}
	}
	if len(fields) == 0 {
		return otp.IssueResult{ShownRead: true}
	}
	c, err := parseChallenge(req.Challenge.Subject, req.Challenge.ID, fields)
	if err != nil {
		return otp.IssueResult{}
	}
	if !req.Now.Before(c.ExpiresAt) {
		c = nil
	}
	return otp.IssueResult{Shown: c, ShownRead: true}
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// refusedBy is the error of a send that limit refused at now.
func refusedBy(limit otp.LimitCheck, now time.Time) *otp.RateLimitError {
	_, end := limit.Bounds(now)
	return &otp.RateLimitError{Limit: limit.Name, RetryAt: end}
}

// Limit implements otp.Store: on one server one limitsScript over every
// counter; on a Cluster one per counter, as in Issue.
func (s *Store) Limit(ctx context.Context, req otp.LimitRequest) (otp.LimitResult, error) {
	if err := req.Validate(); err != nil {
		return otp.LimitResult{}, err
	}
	var err error
	if s.oneStep {
		err = s.countAll(ctx, req.Checks, req.Now)
	} else {
		_, err = s.countEach(ctx, req.Checks, req.Now)
	}
	var rl *otp.RateLimitError
	if errors.As(err, &rl) {
		return otp.LimitResult{Refused: rl.Limit, RetryAt: rl.RetryAt}, nil
	}
	if err != nil {
		return otp.LimitResult{}, err
	}
	return otp.LimitResult{Allowed: true}, nil
}

// countAll counts one send against every check in one limitsScript, or
// against none: *otp.RateLimitError names the first full one.
func (s *Store) countAll(ctx context.Context, checks []otp.LimitCheck, now time.Time) error {
	if len(checks) == 0 {
		return nil
	}
	keys := make([]string, 0, len(checks))
	args := make([]any, 0, 1+2*len(checks))
	args = append(args, ms(now))
	for _, c := range checks {
		keys = append(keys, s.limitKey(c.Name, c.Key))
		args = append(args, windowField(c.Bounds(now)), c.Max)
	}
	full, err := limitsScript.Run(ctx, s.client, keys, args...).Int()
	switch {
	case err != nil:
		return fmt.Errorf("redis limit: %w", err)
	case full == 0:
		return nil
	case full <= len(checks):
		return refusedBy(checks[full-1], now)
	}
	return fmt.Errorf("redis limit: unexpected reply %d", full)
}

// raised is one counter's window that a send raised.
type raised struct{ key, field string }

// countEach counts one send against each check in turn, one limitsScript
// per counter (a Cluster's way). When a check refuses (*otp.RateLimitError)
// or a step fails, the counters raised before it are lowered again, and
// nothing is returned to undo.
func (s *Store) countEach(ctx context.Context, checks []otp.LimitCheck, now time.Time) ([]raised, error) {
	done := make([]raised, 0, len(checks))
	for _, c := range checks {
		key, field := s.limitKey(c.Name, c.Key), windowField(c.Bounds(now))
		full, err := limitsScript.Run(ctx, s.client, []string{key}, ms(now), field, c.Max).Int()
		if err != nil {
			s.refund(ctx, done)
			return nil, fmt.Errorf("redis limit %s: %w", c.Name, err)
		}
		if full != 0 {
			s.refund(ctx, done)
			return nil, refusedBy(c, now)
		}
		done = append(done, raised{key, field})
	}
	return done, nil
}

// refundTimeout bounds the undoing of a refused send's counts. The undoing
// outlives the request's own cancellation, so a client that goes away
// does not leave counts behind for a send that never happened.
const refundTimeout = time.Second

// refund lowers counters a refused send raised. A failed lowering is not
// reported: the refused send then counts, which only ever refuses more.
func (s *Store) refund(ctx context.Context, done []raised) {
	if len(done) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	for _, r := range done {
		refundScript.Run(rctx, s.client, []string{r.key}, r.field)
	}
}

// windowField names a counter's window within its hash.
func windowField(start, end time.Time) string {
	return strconv.FormatInt(ms(start), 10) + ":" + strconv.FormatInt(ms(end), 10)
}

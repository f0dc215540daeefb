package memory

import (
	"context"
	"errors"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// Issue implements otp.Store: one send, decided under the identity's shard
// lock and the limits' lock together (always taken in that order), so the
// lock-out, the cooldown, the challenge's caps and every send limit are
// checked and counted as one step. It fails on a code MAC longer than an
// HMAC-SHA256, the longest the store has room for. A request with a
// breaker part is counted by the breaker too, as IssueGuarded does.
func (s *Store) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	req.History, req.CooldownHistory = nil, nil // only IssueFull keeps them
	res, err := s.issue(ctx, req)
	return res.Challenge, err
}

// IssueGuarded implements otp.BreakerStore: Issue with the breaker's lock
// taken after the identity's and before the limits' (the order every step
// that takes more than one keeps), so the breaker's check and count are
// part of the same step.
func (s *Store) IssueGuarded(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	if req.Breaker == nil {
		return otp.IssueResult{}, errors.New("memory store: a guarded issue without its breaker part")
	}
	req.History, req.CooldownHistory = nil, nil // only IssueFull keeps them
	return s.issue(ctx, req)
}

// IssueFull implements otp.ResultIssuer: the send's history entry
// (req.History) is kept, and its gateway noted on the challenge, under the
// same locks as the send, the history's taken last.
func (s *Store) IssueFull(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	return s.issue(ctx, req)
}

// KeepsHistoryInIssue implements otp.ResultIssuer: false, since in memory
// an entry kept after the send costs no round trip, and an entry sealed
// ahead would cost a seal on every refused send.
func (s *Store) KeepsHistoryInIssue() bool { return false }

func (s *Store) issue(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	if err := ctx.Err(); err != nil {
		return otp.IssueResult{}, err
	}
	if err := req.Validate(); err != nil {
		return otp.IssueResult{}, err
	}
	in := &req.Challenge
	if err := checkMAC(in.CodeMAC); err != nil {
		return otp.IssueResult{}, err
	}
	if err := checkMAC(req.FallbackMAC); err != nil {
		return otp.IssueResult{}, err
	}
	now, loc := nanos(req.Now), req.Now.Location()
	sh := s.shard(in.Subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if req.Breaker != nil {
		b := &s.breaker
		b.mu.Lock()
		defer b.mu.Unlock()
		if blk, ok := b.blocked(req.Breaker.Scopes, now); ok {
			return otp.IssueResult{}, &otp.BlockedError{Scope: blk.Scope, Until: blk.Until}
		}
	}
	id := sh.live(in.Subject, now)
	if id != nil && now < id.lockedUntil {
		return otp.IssueResult{}, &otp.LockedError{Until: instant(id.lockedUntil, loc)}
	}
	if id != nil && now < id.nextSendAt {
		res := shown(id, req)
		if req.CooldownHistory != nil {
			rec := *req.History
			rec.Data, rec.Sent = req.CooldownHistory, nil
			s.appendLists(rec)
			res.HistoryKept = true
		}
		return res, &otp.CooldownError{RetryAt: instant(id.nextSendAt, loc)}
	}
	resend, err := resendTarget(id, req)
	if errors.Is(err, otp.ErrCallLimit) {
		return shown(id, req), err
	}
	if err != nil {
		return otp.IssueResult{}, err
	}
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	if err := s.refusal(req.Limits, req.Now); err != nil {
		return shown(id, req), err
	}
	s.raise(req.Limits, req.Now)
	var c *challenge
	if resend >= 0 {
		c = id.resend(resend, req)
	} else {
		if id == nil {
			id = newIdentity()
			sh.identities[in.Subject] = id
		}
		c = id.create(req)
	}
	inc(&id.sends)
	id.sendExpires = nanos(req.Now.Add(req.SendWindow))
	id.nextSendAt = nanos(req.Now.Add(otp.JitteredCooldown(int(id.sends), req.CooldownBase, req.CooldownMax, req.JitterPermille)))
	kept := req.History != nil && c.id == in.ID
	if kept && req.History.Sent != nil {
		c.gateway = req.History.Sent.Gateway
	}
	res := otp.IssueResult{Challenge: c.export(in.Subject, loc), HistoryKept: kept}
	if b := req.Breaker; b != nil {
		res.NewBlocks = s.breaker.count(otp.BreakerCountRequest{Ref: c.id, Scopes: b.Scopes, Now: req.Now, RefTTL: b.RefTTL, Policy: b.Policy})
	}
	if kept {
		s.appendLists(*req.History)
	}
	return res, nil
}

// shown is the result of a refused resend: the challenge it names, as
// Challenge would return it (id is the identity, live at req.Now).
func shown(id *identity, req otp.IssueRequest) otp.IssueResult {
	if !req.Resend {
		return otp.IssueResult{}
	}
	out := otp.IssueResult{ShownRead: true}
	if id != nil {
		if i := id.find(req.Challenge.ID); i >= 0 {
			out.Shown = id.challenges[i].export(req.Challenge.Subject, req.Now.Location())
		}
	}
	return out
}

// resendTarget returns the index of the challenge a resend puts its new
// code in, or -1 when the send creates a challenge (a first send, or a
// resend whose challenge is gone and that has a fallback). It changes
// nothing.
func resendTarget(id *identity, req otp.IssueRequest) (int, error) {
	if !req.Resend {
		return -1, nil
	}
	in := &req.Challenge
	i := -1
	if id != nil {
		i = id.find(in.ID)
	}
	if i < 0 || !id.challenges[i].resendable(in) {
		if req.FallbackID != "" {
			return -1, nil
		}
		return -1, otp.ErrChallengeNotFound
	}
	c := &id.challenges[i]
	if int(c.sends) >= req.MaxSends {
		return -1, otp.ErrSendLimit
	}
	if req.Voice && int(c.calls) >= req.MaxCalls {
		return -1, otp.ErrCallLimit
	}
	return i, nil
}

// resendable reports whether a resend of in may put a new code in c: the
// same session and phone, and attempts left.
func (c *challenge) resendable(in *otp.Challenge) bool {
	return c.sessionHash == in.SessionHash && c.phoneHash == in.PhoneHash && c.attempts < c.maxAttempts
}

// resend puts the request's code in the i-th challenge.
func (id *identity) resend(i int, req otp.IssueRequest) *challenge {
	c := &id.challenges[i]
	c.setMAC(req.Challenge.CodeMAC)
	c.sent = nanos(req.Challenge.SentAt)
	c.expires = nanos(req.Challenge.ExpiresAt)
	inc(&c.sends)
	c.delivery = 0
	c.gateway = ""
	if req.Voice {
		inc(&c.calls)
	}
	return c
}

// create adds the request's challenge (its fallback, for a resend whose
// challenge is gone), replacing one of the same id.
func (id *identity) create(req otp.IssueRequest) *challenge {
	in := &req.Challenge
	cid, mac := in.ID, in.CodeMAC
	if req.Resend {
		cid, mac = req.FallbackID, req.FallbackMAC
	}
	i := id.find(cid)
	if i < 0 {
		i = len(id.challenges)
		id.challenges = append(id.challenges, challenge{})
	}
	c := &id.challenges[i]
	*c = challenge{
		id:          cid,
		sessionHash: in.SessionHash,
		phoneHash:   in.PhoneHash,
		phoneMasked: in.PhoneMasked,
		created:     nanos(in.CreatedAt),
		sent:        nanos(in.SentAt),
		expires:     nanos(in.ExpiresAt),
		maxAttempts: narrow(in.MaxAttempts),
		sends:       1,
		historyKey:  in.HistoryKey,
	}
	c.setMAC(mac)
	if req.Voice {
		c.calls = 1
	}
	return c
}

package otp

import (
	"context"
	"fmt"
)

// SendRequest asks for a code to be sent.
type SendRequest struct {
	Subject     string
	SessionHash string
	Phone       Phone
	// ResendID is the challenge the browser already has, if any: a resend
	// puts a new code in it (the old one stops working) and keeps its
	// attempt count.
	ResendID string
	Locale   string
	// Voice reads the code out in a phone call instead of an SMS; only as
	// a resend, and only through a gateway that can call.
	Voice bool
	// ClientIP is the client's address as Caddy determined it (honouring
	// trusted_proxies), never a raw X-Forwarded-For. Empty skips the
	// per-address limit.
	ClientIP string
	// Device is the id of the browser's signed device cookie; empty
	// skips the per-device limit.
	Device string
	// Action is what the code confirms, in Locale, for the SMS to name;
	// "" when the route names none. It comes from configuration, never
	// from the client.
	Action string
}

// SendResult is a challenge whose code went to the gateway.
type SendResult struct {
	Challenge *Challenge
	Receipt   Receipt
	Resent    bool
	// Shown, when ShownRead, is the challenge a resend refused by the
	// cooldown, a limit or the call cap named, live and of the request's
	// session, as Challenge would return it (nil: none), read in the
	// refusing store step for the page; without ShownRead, only
	// Challenge can tell.
	Shown     *Challenge
	ShownRead bool
	// Repeated says the refusal is the store's, repeated by this instance
	// without a store step (refusal_memo.go); it left no history entry.
	Repeated bool

	// ahead is the send's history entry as the store kept it before the
	// gateway answered (history_ahead.go); nil when it kept none.
	// refusalKept says the store kept the entry of the send's refusal.
	ahead       *HistoryRecord
	refusalKept bool
}

// send makes a code, stores its MAC in a new or resent challenge while
// counting the send against the send limits (one atomic store step), and
// sends it. A send that the identity's lock-out, its cooldown or a send
// limit refuses changes nothing in the store and never reaches the gateway
// (*LockedError, *CooldownError, *RateLimitError); a send that passed stays
// counted even if the gateway then fails, since the provider may have
// charged for it and retrying must not be free. Store failures come back
// wrapping ErrStoreUnavailable and nothing is sent; gateway failures wrap
// ErrSendFailed. A send to a number whose prefix, range or country the
// conversion breaker has blocked never reaches the gateway either
// (*BlockedError): the breaker's check and count are part of the same store
// step (BreakerStore.IssueGuarded; on a Redis Cluster ordered steps just
// around it). A send with a counter whose refusal this instance holds is
// refused as the store refused it, with no store step (refusal_memo.go).
func (s *Service) send(ctx context.Context, req SendRequest) (SendResult, error) {
	if req.Voice && (s.voice == nil || req.ResendID == "") {
		// Before the limits and the store: a call that cannot be made must
		// not replace the code, spend a send or start the cooldown.
		return SendResult{}, ErrNoVoice
	}
	counters := s.countersOf(req)
	if err := s.heldRefusal(counters); err != nil {
		// The store's own refusal, repeated with no store step
		// (refusal_memo.go).
		return SendResult{Repeated: true}, err
	}
	code, err := NewCode(s.rand, s.cfg.CodeLength)
	if err != nil {
		return SendResult{}, err
	}
	issued, err := s.issue(ctx, req, code, counters)
	c := issued.Challenge
	if err != nil {
		s.noteRefusal(counters, err)
		// A challenge comes back with an error only from a Cluster's
		// breaker step after the send's own (IssueGuarded).
		return SendResult{Challenge: c, Resent: c != nil && c.ID == req.ResendID, Shown: s.shown(req, issued), ShownRead: issued.ShownRead,
			refusalKept: issued.HistoryKept}, err
	}
	resent := c.ID == req.ResendID
	var ahead *HistoryRecord
	if issued.HistoryKept {
		ahead = issued.ahead
	}
	msg := Message{To: req.Phone.E164, Locale: req.Locale, Ref: c.ID}
	if req.Voice {
		msg.Body = s.cfg.Messages.ComposeVoice(req.Locale, s.cfg.ServiceName, code)
	} else if msg.Body, err = s.cfg.Messages.Compose(req.Locale, s.cfg.ServiceName, code, s.cfg.CodeTTL, req.Action); err != nil {
		return SendResult{Challenge: c, Resent: resent, ahead: ahead}, err
	}
	if s.cfg.ReceiptBase != "" {
		msg.ReceiptBase = s.cfg.ReceiptBase
		if msg.ReceiptToken, err = s.keys.SealReceipt(req.Subject, c.ID); err != nil {
			return SendResult{Challenge: c, Resent: resent, ahead: ahead}, err
		}
	}
	var receipt Receipt
	if req.Voice {
		receipt, err = s.voice.Call(ctx, msg)
	} else {
		receipt, err = s.gateway.Send(ctx, msg)
	}
	if err != nil {
		return SendResult{Challenge: c, Resent: resent, ahead: ahead}, fmt.Errorf("%w: %w", ErrSendFailed, err)
	}
	s.learnGateway(req.Voice, receipt.Gateway)
	s.noteSent(c, receipt.Gateway)
	return SendResult{Challenge: c, Receipt: receipt, Resent: resent, ahead: ahead}, nil
}

// issue stores code's MAC for one send in the one store step that also
// checks the breaker's blocks, the identity's lock-out and cooldown, and
// counts the send limits and the breaker's scopes. A resend whose challenge
// is gone gets a new challenge in the same step (a call does not: there is
// no code to call about). OnBlock hears of the blocks the send set.
func (s *Service) issue(ctx context.Context, req SendRequest, code string, counters sendCounters) (issued, error) {
	now := s.clock.Now()
	masked, err := s.keys.SealMasked(req.Subject, req.Phone.Masked)
	if err != nil {
		return issued{}, err
	}
	id := req.ResendID
	if id == "" {
		var err error
		if id, err = newID(s.rand); err != nil {
			return issued{}, err
		}
	}
	jitter, err := drawJitter(s.rand, s.cfg.CooldownJitter)
	if err != nil {
		return issued{}, err
	}
	issue := IssueRequest{
		Challenge: Challenge{
			ID:          id,
			Subject:     req.Subject,
			SessionHash: req.SessionHash,
			PhoneHash:   s.keys.PhoneHash(req.Phone.E164),
			PhoneMasked: masked, // sealed: see masked_seal.go
			CodeMAC:     s.keys.CodeMAC(id, code),
			CreatedAt:   now,
			SentAt:      now,
			ExpiresAt:   now.Add(s.cfg.CodeTTL),
			MaxAttempts: s.cfg.MaxAttempts,
			HistoryKey:  s.historyKey(req.Phone),
		},
		Resend:         req.ResendID != "",
		Voice:          req.Voice,
		MaxCalls:       s.cfg.MaxCalls,
		Now:            now,
		MaxSends:       s.cfg.MaxSends,
		CooldownBase:   s.cfg.CooldownBase,
		CooldownMax:    s.cfg.CooldownMax,
		SendWindow:     s.cfg.SendWindow,
		JitterPermille: jitter,
		Limits:         counters.limits,
	}
	if issue.Resend && !req.Voice {
		fallback, err := newID(s.rand)
		if err != nil {
			return issued{}, err
		}
		issue.FallbackID, issue.FallbackMAC = fallback, s.keys.CodeMAC(fallback, code)
	}
	if s.breaker != nil {
		issue.Breaker = &IssueBreaker{Scopes: counters.scopes, Policy: s.cfg.Breaker, RefTTL: s.cfg.CodeTTL}
	}
	if s.historyAhead {
		// A failed seal only costs the round trip it would have saved.
		issue.History, issue.CooldownHistory = s.sealAhead(req, id, now)
	}
	var res issued
	switch {
	case s.issuer != nil:
		res.IssueResult, err = s.issuer.IssueFull(ctx, issue)
	case issue.Breaker != nil:
		res.IssueResult, err = s.breaker.IssueGuarded(ctx, issue)
	default:
		res.Challenge, err = s.store.Issue(ctx, issue)
	}
	if issue.Breaker != nil {
		s.tellBlocks(res.NewBlocks)
	}
	res.Challenge, res.Shown = s.openChallenge(res.Challenge), s.openChallenge(res.Shown)
	res.ahead = issue.History
	if err != nil {
		return res, storeErr(err)
	}
	return res, nil
}

// issued is the store's IssueResult with the history entry sealed ahead
// for it (nil: none).
type issued struct {
	IssueResult
	ahead *HistoryRecord
}

package otp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
)

// Send makes a code and sends it; send (service.go) says how a send is
// decided, refused and counted. Each send, refused or not, also leaves an
// entry in the send history when the service keeps one.
func (s *Service) Send(ctx context.Context, req SendRequest) (SendResult, error) {
	res, err := s.send(ctx, req)
	s.recordSend(ctx, req, res, err)
	return res, err
}

// Verify checks a code: one atomic count-compare-consume in the store
// (verify, service.go). Each verification the store decided also leaves an
// entry in the send history when the service keeps one.
func (s *Service) Verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	var sent HistoryEntry
	if s.history != nil {
		// Before the verification, which may consume the challenge: the
		// challenge's latest send names its number and prefix.
		sent = s.lastSend(ctx, in.Subject, in.ChallengeID)
	}
	res, err := s.verify(ctx, in)
	s.recordVerify(ctx, in, sent, res, err)
	return res, err
}

// recordSend keeps one send's entry under the identity, the number's
// prefix and the challenge. History is a record, not a control: a store
// that fails to keep it fails nothing else (the send itself has failed
// closed already if the store is down).
func (s *Service) recordSend(ctx context.Context, req SendRequest, res SendResult, err error) {
	if s.history == nil || errors.Is(err, ErrStoreUnavailable) || errors.Is(err, ErrNoVoice) || errors.Is(err, ErrMalformedCode) {
		return
	}
	prefix := s.keys.HistoryPrefixKey(numberPrefix(req.Phone.E164))
	e := HistoryEntry{
		At: s.clock.Now(), Event: HistorySend, Identity: req.Subject, Phone: req.Phone.Masked,
		PrefixKey: prefix, Gateway: res.Receipt.Gateway, Voice: req.Voice,
	}
	e.Outcome, e.Reason = sendOutcome(err)
	lists := []HistoryList{{Key: s.keys.HistoryIdentityKey(req.Subject), Max: s.cfg.History.MaxPerList}, {Key: prefix, Max: s.cfg.History.MaxPerList}}
	if res.Challenge != nil {
		e.Challenge = ShortID(res.Challenge.ID)
		lists = append(lists, HistoryList{Key: s.keys.historyChallengeKey(req.Subject, res.Challenge.ID), Max: 1})
	}
	s.appendHistory(ctx, e, lists)
}

// sendOutcome names how a send went, and why it was refused or failed.
func sendOutcome(err error) (outcome, reason string) {
	var cd *CooldownError
	var lk *LockedError
	var rl *RateLimitError
	var bl *BlockedError
	switch {
	case err == nil:
		return HistorySent, ""
	case errors.As(err, &cd):
		return HistoryRefused, "cooldown"
	case errors.As(err, &lk):
		return HistoryRefused, "locked"
	case errors.As(err, &rl):
		return HistoryRefused, "limit:" + rl.Limit
	case errors.As(err, &bl):
		// The kind only: the scope's value is a number prefix in clear.
		kind, _, _ := strings.Cut(bl.Scope, ":")
		return HistoryRefused, "blocked:" + kind
	case errors.Is(err, ErrSendLimit):
		return HistoryRefused, "max_sends"
	case errors.Is(err, ErrCallLimit):
		return HistoryRefused, "max_calls"
	case errors.Is(err, ErrChallengeNotFound):
		return HistoryRefused, "no_challenge"
	case errors.Is(err, ErrSendFailed):
		return HistoryFailed, "gateway"
	}
	return HistoryFailed, "error"
}

// lastSend reads the entry of the challenge's latest send; zero when there
// is none (or the store fails: the verification then goes under the
// identity only).
func (s *Service) lastSend(ctx context.Context, subject, challengeID string) HistoryEntry {
	now := s.clock.Now()
	items, err := s.history.History(ctx, s.keys.historyChallengeKey(subject, challengeID), now.Add(-s.cfg.History.Retention), now, s.cfg.History.Retention, 1)
	if err != nil || len(items) == 0 {
		return HistoryEntry{}
	}
	e, err := s.keys.OpenHistory(items[0].Data)
	if err != nil || e.Identity != subject {
		return HistoryEntry{}
	}
	return e
}

// recordVerify keeps one verification's entry under the identity and, when
// the challenge's send is known, its number's prefix.
func (s *Service) recordVerify(ctx context.Context, in VerifyInput, sent HistoryEntry, res VerifyResult, err error) {
	if s.history == nil || err != nil {
		return
	}
	e := HistoryEntry{
		At: s.clock.Now(), Event: HistoryVerify, Outcome: res.Status.String(), Identity: in.Subject,
		Phone: sent.Phone, PrefixKey: sent.PrefixKey, Gateway: sent.Gateway, Challenge: ShortID(in.ChallengeID),
	}
	lists := []HistoryList{{Key: s.keys.HistoryIdentityKey(in.Subject), Max: s.cfg.History.MaxPerList}}
	if sent.PrefixKey != "" {
		lists = append(lists, HistoryList{Key: sent.PrefixKey, Max: s.cfg.History.MaxPerList})
	}
	s.appendHistory(ctx, e, lists)
}

func (s *Service) appendHistory(ctx context.Context, e HistoryEntry, lists []HistoryList) {
	data, err := s.keys.SealHistory(e)
	if err != nil {
		return
	}
	// Without cancellation: the request may end (the client gone) as
	// the entry is written, and what it did is still worth keeping.
	_ = s.history.AppendHistory(context.WithoutCancel(ctx), HistoryRecord{Lists: lists, At: e.At, Data: data, Retention: s.cfg.History.Retention})
}

// History returns the entries of one identity or one number prefix, newest
// first (for an operator): ErrNoHistory when none is kept.
func (s *Service) History(ctx context.Context, q HistoryQuery) ([]HistoryEntry, error) {
	if s.history == nil {
		return nil, ErrNoHistory
	}
	var key string
	switch {
	case q.Identity != "" && q.Prefix != "":
		return nil, errors.New("history: expected an identity or a prefix, not both")
	case q.Identity != "":
		key = s.keys.HistoryIdentityKey(q.Identity)
	case q.Prefix != "":
		prefix, err := HistoryPrefixOf(q.Prefix)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		key = s.keys.HistoryPrefixKey(prefix)
	default:
		return nil, errors.New("history: expected an identity or a prefix")
	}
	now := s.clock.Now()
	since := now.Add(-s.cfg.History.Retention)
	if q.Since.After(since) {
		since = q.Since
	}
	max := cmp.Or(q.Max, s.cfg.History.MaxPerList)
	items, err := s.history.History(ctx, key, since, now, s.cfg.History.Retention, max)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]HistoryEntry, 0, len(items))
	for _, it := range items {
		// An entry sealed under another key (before a key rotation)
		// does not open, and is passed over.
		if e, err := s.keys.OpenHistory(it.Data); err == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// HistoryPolicy returns how much history the service keeps; zero when it
// keeps none.
func (s *Service) HistoryPolicy() HistoryPolicy {
	if s.history == nil {
		return HistoryPolicy{}
	}
	return s.cfg.History
}

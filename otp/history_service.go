package otp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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
	res, err := s.verify(ctx, in)
	s.recordVerify(ctx, in, res, err)
	return res, err
}

// recordSend keeps one send's entry under the identity and the number's
// prefix, in one store step (HistoryStore.AppendHistory). History is a
// record, not a control: a store that fails to keep it fails nothing else
// (the send itself has failed closed already if the store is down). The
// entry is written after the send's own store step, and after the gateway
// for a send that went out, since it names how the send went, unless the
// send's own step kept it, sealed ahead (history_ahead.go); then it is
// written again only if the send went otherwise. Of the refusals only the
// cooldown's entry is sealed ahead (the one a flood's sends mostly meet):
// a seal for every reason on every send would cost more than it saves.
// A refusal the service repeated without the store (SendResult.Repeated)
// leaves no entry: only the store's refusal it repeats does.
func (s *Service) recordSend(ctx context.Context, req SendRequest, res SendResult, err error) {
	if s.history == nil || res.refusalKept || res.Repeated || errors.Is(err, ErrStoreUnavailable) || errors.Is(err, ErrNoVoice) || errors.Is(err, ErrMalformedCode) {
		return
	}
	prefix := s.historyKey(req.Phone)
	if res.Challenge != nil && res.Challenge.HistoryKey != "" {
		prefix = res.Challenge.HistoryKey
	}
	id := ""
	if res.Challenge != nil {
		id = res.Challenge.ID
	}
	e := s.sendEntry(req, s.clock.Now(), prefix, id)
	e.Gateway = res.Receipt.Gateway
	e.Outcome, e.Reason = sendOutcome(err)
	if res.ahead != nil {
		s.correctAhead(ctx, req, res.ahead, e)
		return
	}
	var sent *SentGateway
	if id != "" && e.Gateway != "" {
		sent = &SentGateway{Subject: req.Subject, ChallengeID: id, Gateway: e.Gateway}
	}
	s.appendHistory(ctx, e, s.sendLists(req, prefix), sent)
}

// sendEntry is the entry of req's send at, to the challenge id ("": none)
// under the prefix's list, without its outcome.
func (s *Service) sendEntry(req SendRequest, at time.Time, prefix, id string) HistoryEntry {
	return HistoryEntry{At: at, Event: HistorySend, Identity: req.Subject, Phone: req.Phone.Masked,
		PrefixKey: prefix, Voice: req.Voice, Challenge: ShortID(id)}
}

// sendLists are the lists a send's entry goes in: the identity's and the
// number prefix's.
func (s *Service) sendLists(req SendRequest, prefix string) []HistoryList {
	return []HistoryList{{Key: s.keys.HistoryIdentityKey(req.Subject), Max: s.cfg.History.MaxPerList}, {Key: prefix, Max: s.cfg.History.MaxPerList}}
}

// historyKey names the history list of phone's prefix; "" when no history
// is kept. The challenge keeps it (Challenge.HistoryKey), so that its
// verification finds it without reading the history.
func (s *Service) historyKey(phone Phone) string {
	if s.history == nil {
		return ""
	}
	return s.keys.HistoryPrefixKey(numberPrefix(phone.E164))
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

// recordVerify keeps one verification's entry under the identity and, when
// the store found the challenge, its number's prefix: the store's verify
// step returns the masked number, the prefix's list and the gateway the
// challenge kept from its send (VerifyResult), so no history is read first;
// unless that step kept the entry, sealed ahead (history_verify_ahead.go).
func (s *Service) recordVerify(ctx context.Context, in VerifyInput, res VerifyResult, err error) {
	if s.history == nil || err != nil || res.HistoryKept {
		return
	}
	e := HistoryEntry{
		At: s.clock.Now(), Event: HistoryVerify, Outcome: res.Status.String(), Identity: in.Subject,
		Phone: res.PhoneMasked, PrefixKey: res.HistoryKey, Gateway: res.Gateway, Challenge: ShortID(in.ChallengeID),
	}
	s.appendHistory(ctx, e, s.verifyLists(in.Subject, res.HistoryKey), nil)
}

func (s *Service) appendHistory(ctx context.Context, e HistoryEntry, lists []HistoryList, sent *SentGateway) {
	data, err := s.keys.SealHistory(e)
	if err != nil {
		return
	}
	// Without cancellation: the request may end (the client gone) as
	// the entry is written, and what it did is still worth keeping.
	_ = s.history.AppendHistory(context.WithoutCancel(ctx), HistoryRecord{Lists: lists, At: e.At, Data: data, Retention: s.cfg.History.Retention, Sent: sent})
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
	// A store orders by the millisecond; entries within one (a send and
	// its refused resend, say) come in no order of their own: newest
	// first by the entry's own time.
	slices.SortStableFunc(out, func(a, b HistoryEntry) int { return b.At.Compare(a.At) })
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

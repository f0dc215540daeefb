package otp

import (
	"context"
	"time"
)

// A send's history entry sealed ahead. On one Redis server or Sentinel a
// send's entry used to be a round trip of its own after the gateway
// answered, since it names how the send went. Now, where the store says
// it saves that round trip (ResultIssuer.KeepsHistoryInIssue), the entry
// is sealed before the send as if the send went out through the gateway
// that took the latest one, and the send's own store step keeps it, with
// that gateway noted on the challenge, only if the send is issued; so is
// the entry of the send refused by the cooldown, kept only if the cooldown
// refuses it. Other refusals' entries are written after the step. Only
// when the send then goes otherwise (the gateway fails, a failover lands
// on another gateway, the message cannot be made) does one more step put
// the true entry in its place (HistoryRecord.Replaces) and note the true
// gateway, none for a send that failed.
//
// The window this leaves: a process that dies between the store step and
// the gateway's answer leaves an entry that says "sent" for a code that
// may never have left. The entry written after the gateway had the
// opposite window: a code that went out with no entry at all. The record
// now errs towards a send that is listed but did not happen, never a
// send that happened unlisted; the send's counts are the same either way
// (docs/SECURITY.md rule 35).

// sealAhead seals the entry of req's send to the challenge id as sent at
// now, through the gateway that took the latest send of its kind, and the
// entry of the same send refused by the cooldown: two seals (about 2 µs
// each, BenchmarkSealSendEntry) against the round trip each saves, the
// cooldown's on the path a flood's sends mostly take. Nil, nil when a
// seal fails: the entry is then written after the send.
func (s *Service) sealAhead(req SendRequest, id string, now time.Time) (*HistoryRecord, []byte) {
	prefix := s.historyKey(req.Phone)
	refused := s.sendEntry(req, now, prefix, "")
	refused.Outcome, refused.Reason = sendOutcome(&CooldownError{})
	cooldown, err := s.keys.SealHistory(refused)
	if err != nil {
		return nil, nil
	}
	e := s.sendEntry(req, now, prefix, id)
	e.Outcome, e.Gateway = HistorySent, s.predictGateway(req.Voice)
	data, err := s.keys.SealHistory(e)
	if err != nil {
		return nil, nil
	}
	return &HistoryRecord{Lists: s.sendLists(req, prefix), At: now, Data: data, Retention: s.cfg.History.Retention,
		Sent: &SentGateway{Subject: req.Subject, ChallengeID: id, Gateway: e.Gateway}}, cooldown
}

// correctAhead puts e, how the send went, in the place of the entry the
// store kept ahead, when they differ, and notes e's gateway on the
// challenge (none for a send that failed).
func (s *Service) correctAhead(ctx context.Context, req SendRequest, ahead *HistoryRecord, e HistoryEntry) {
	if e.Outcome == HistorySent && e.Reason == "" && e.Gateway == ahead.Sent.Gateway {
		return
	}
	data, err := s.keys.SealHistory(e)
	if err != nil {
		return
	}
	sent := *ahead.Sent
	sent.Gateway = e.Gateway
	_ = s.history.AppendHistory(context.WithoutCancel(ctx), HistoryRecord{Lists: ahead.Lists, At: e.At, Data: data,
		Retention: s.cfg.History.Retention, Sent: &sent, Replaces: ahead.Data})
}

// predictGateway names the gateway that took the latest SMS (or call):
// the one the next most likely goes to. "" before the first.
func (s *Service) predictGateway(voice bool) string {
	if p := s.lastGateway[kindIndex(voice)].Load(); p != nil {
		return *p
	}
	return ""
}

// learnGateway remembers the gateway that took a send.
func (s *Service) learnGateway(voice bool, gateway string) {
	if !s.historyAhead {
		return
	}
	last := &s.lastGateway[kindIndex(voice)]
	if p := last.Load(); p == nil || *p != gateway {
		last.Store(&gateway)
	}
}

func kindIndex(voice bool) int {
	if voice {
		return 1
	}
	return 0
}

// shown is the challenge a refused resend named, read in the refusing
// step, when it is of the request's session (as Challenge checks).
func (s *Service) shown(req SendRequest, res issued) *Challenge {
	if c := res.Shown; c != nil && c.SessionHash == req.SessionHash {
		return c
	}
	return nil
}

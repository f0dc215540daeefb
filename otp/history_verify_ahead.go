package otp

import (
	"sync"
	"time"
)

// A verification's history entry sealed ahead. The entry names where the
// code went (the masked number, the prefix's list, the gateway), which only
// the challenge knows, so it used to be written in a second round trip
// after the verification's own store step returned them. The instance that
// sent the code knows them too: it notes them per challenge (sentNotes),
// and when the verification comes to it, the entries of the outcomes a
// flood and a real user mostly meet (ok, a wrong code, the attempts used
// up) are sealed before the step, and the store keeps the one of the
// outcome it decided, in the same step, only if the challenge it verified
// still names the same number, list and gateway (VerifyRequest.History).
// Any other outcome, a challenge this instance did not send, or a store
// that keeps none (the memory store, a Cluster) leaves the entry to the
// second step, as before. Either way the entry is the same; kept in the
// step, no verification can happen without its entry (docs/SECURITY.md
// rule 35).

// VerifyHistory is a verification's history entry sealed ahead, one per
// outcome a store may keep it for.
type VerifyHistory struct {
	Lists     []HistoryList
	At        time.Time
	Retention time.Duration
	// PhoneHash, HistoryKey and Gateway are the challenge's as its send
	// left them: a store keeps an entry only when the challenge it
	// verifies says the same.
	PhoneHash, HistoryKey, Gateway string
	// OK, Wrong and Exhausted are the entry sealed for VerifyOK,
	// VerifyWrong and VerifyExhausted.
	OK, Wrong, Exhausted []byte
}

// Entry is the sealed entry for status, nil for an outcome kept after the
// step.
func (h *VerifyHistory) Entry(status VerifyStatus) []byte {
	switch status {
	case VerifyOK:
		return h.OK
	case VerifyWrong:
		return h.Wrong
	case VerifyExhausted:
		return h.Exhausted
	}
	return nil
}

// sentNote is where a challenge's latest code went, as its send left it on
// the challenge.
type sentNote struct {
	masked, phoneHash, historyKey, gateway string
	until                                  time.Time // the challenge's expiry
}

// maxSentNotes bounds the notes (about 150 bytes each); full, the expired
// ones go, then arbitrary ones down to three quarters. A verification
// whose note is gone only takes the second step.
const maxSentNotes = 50_000

// sentNotes are the notes of the challenges this instance sent, by id.
type sentNotes struct {
	mu sync.Mutex
	by map[string]sentNote
}

func (n *sentNotes) put(id string, note sentNote, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.by == nil {
		n.by = make(map[string]sentNote)
	}
	if _, ok := n.by[id]; !ok && len(n.by) >= maxSentNotes {
		makeRoom(n.by, func(v sentNote) bool { return !now.Before(v.until) }, maxSentNotes)
	}
	n.by[id] = note
}

func (n *sentNotes) get(id string, now time.Time) (sentNote, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	note, ok := n.by[id]
	if ok && !now.Before(note.until) {
		delete(n.by, id)
		return sentNote{}, false
	}
	return note, ok
}

// noteSent notes where the code of challenge c went through gateway, for
// its verification's entry; only where the store keeps entries in its
// steps.
func (s *Service) noteSent(c *Challenge, gateway string) {
	if !s.historyAhead || c == nil {
		return
	}
	s.sent.put(c.ID, sentNote{masked: c.PhoneMasked, phoneHash: c.PhoneHash, historyKey: c.HistoryKey, gateway: gateway, until: c.ExpiresAt}, s.clock.Now())
}

// sealVerifyAhead seals in's verification entries at now for the outcomes
// a store keeps in its step, when this instance sent the challenge's code;
// nil otherwise, or when a seal fails (the entry is then written after).
func (s *Service) sealVerifyAhead(in VerifyInput, now time.Time) *VerifyHistory {
	if !s.historyAhead {
		return nil
	}
	note, ok := s.sent.get(in.ChallengeID, now)
	if !ok {
		return nil
	}
	h := &VerifyHistory{Lists: s.verifyLists(in.Subject, note.historyKey), At: now, Retention: s.cfg.History.Retention,
		PhoneHash: note.phoneHash, HistoryKey: note.historyKey, Gateway: note.gateway}
	e := HistoryEntry{At: now, Event: HistoryVerify, Identity: in.Subject, Phone: note.masked, PrefixKey: note.historyKey,
		Gateway: note.gateway, Challenge: ShortID(in.ChallengeID)}
	for _, out := range []struct {
		status VerifyStatus
		data   *[]byte
	}{{VerifyOK, &h.OK}, {VerifyWrong, &h.Wrong}, {VerifyExhausted, &h.Exhausted}} {
		e.Outcome = out.status.String()
		data, err := s.keys.SealHistory(e)
		if err != nil {
			return nil
		}
		*out.data = data
	}
	return h
}

// verifyLists are the lists a verification's entry goes in: the
// identity's and, when the challenge names one, its number prefix's.
func (s *Service) verifyLists(subject, historyKey string) []HistoryList {
	lists := []HistoryList{{Key: s.keys.HistoryIdentityKey(subject), Max: s.cfg.History.MaxPerList}}
	if historyKey != "" {
		lists = append(lists, HistoryList{Key: historyKey, Max: s.cfg.History.MaxPerList})
	}
	return lists
}

package memory

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// maxHistoryLists caps the history lists held at once (one per identity,
// number prefix and challenge seen within the retention). Past it an entry
// goes only into the lists that exist already, so a flood of identities
// cannot grow the store without bound; each list is bounded by its Max.
const maxHistoryLists = 200_000

// historyLists holds the send history (otp.HistoryStore): per list, its
// entries oldest first, each with its expiry. The sweeper drops what has
// expired, and a list once empty.
type historyLists struct {
	mu    sync.Mutex
	lists map[string][]historyItem
}

type historyItem struct {
	at, expires int64
	data        []byte
}

// AppendHistory implements otp.HistoryStore. A record of a send that went
// out notes its gateway on the challenge first, under the identity's lock.
func (s *Store) AppendHistory(ctx context.Context, rec otp.HistoryRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := rec.Validate(); err != nil {
		return err
	}
	if rec.Sent != nil {
		s.noteGateway(*rec.Sent, nanos(rec.At))
	}
	s.appendLists(rec)
	return nil
}

// appendLists puts rec's entry in its lists, in place of the entry it
// replaces (if any), under the history's lock.
func (s *Store) appendLists(rec otp.HistoryRecord) {
	at := nanos(rec.At)
	item := historyItem{at: at, expires: nanos(rec.At.Add(rec.Retention)), data: append([]byte(nil), rec.Data...)}
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lists == nil {
		h.lists = make(map[string][]historyItem)
	}
	for _, l := range rec.Lists {
		items, ok := h.lists[l.Key]
		if !ok && len(h.lists) >= maxHistoryLists {
			continue
		}
		items = dropExpired(items, at)
		if rec.Replaces != nil {
			items = dropEntry(items, rec.Replaces)
		}
		h.lists[l.Key] = capOldest(insertByTime(items, item), l.Max)
	}
}

// dropEntry drops the item whose sealed entry is data.
func dropEntry(items []historyItem, data []byte) []historyItem {
	for i := range items {
		if bytes.Equal(items[i].data, data) {
			copy(items[i:], items[i+1:])
			items[len(items)-1] = historyItem{}
			return items[:len(items)-1]
		}
	}
	return items
}

// insertByTime puts it after every item not later than it: the list stays
// oldest first when entries come in out of order.
func insertByTime(items []historyItem, it historyItem) []historyItem {
	i := len(items)
	for i > 0 && items[i-1].at > it.at {
		i--
	}
	items = append(items, historyItem{})
	copy(items[i+1:], items[i:])
	items[i] = it
	return items
}

// capOldest drops the oldest items past max, into a new array once the
// dropped part would be as long as what is kept.
func capOldest(items []historyItem, max int) []historyItem {
	if over := len(items) - max; over > 0 {
		items = items[over:]
		if cap(items) > 2*len(items)+8 {
			items = append([]historyItem(nil), items...)
		}
	}
	return items
}

// dropExpired drops the items expired at now (the oldest ones, mostly).
func dropExpired(items []historyItem, now int64) []historyItem {
	kept := items[:0]
	for _, it := range items {
		if now < it.expires {
			kept = append(kept, it)
		}
	}
	clear(items[len(kept):])
	return kept
}

// History implements otp.HistoryStore.
func (s *Store) History(ctx context.Context, key string, since, now time.Time, retention time.Duration, max int) ([]otp.HistoryItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	from, n := nanos(since), nanos(now)
	if oldest := nanos(now.Add(-retention)); oldest > from {
		from = oldest
	}
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	items := h.lists[key]
	var out []otp.HistoryItem
	for i := len(items) - 1; i >= 0 && len(out) < max; i-- {
		it := items[i]
		if it.at < from {
			break
		}
		if n < it.expires && it.at <= n {
			out = append(out, otp.HistoryItem{At: instant(it.at, now.Location()), Data: append([]byte(nil), it.data...)})
		}
	}
	return out, nil
}

// sweepHistory drops expired entries, and the lists left empty.
func (s *Store) sweepHistory(now time.Time) {
	n := nanos(now)
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, items := range h.lists {
		if items = dropExpired(items, n); len(items) == 0 {
			delete(h.lists, k)
		} else {
			h.lists[k] = items
		}
	}
}

// HistoryLen reports how many history lists and entries are held (for
// tests).
func (s *Store) HistoryLen() (lists, entries int) {
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, items := range h.lists {
		entries += len(items)
	}
	return len(h.lists), entries
}

// noteGateway notes on a live challenge which gateway took its code.
func (s *Store) noteGateway(sent otp.SentGateway, now int64) {
	sh := s.shard(sent.Subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	id := sh.live(sent.Subject, now)
	if id == nil {
		return
	}
	if i := id.find(sent.ChallengeID); i >= 0 {
		id.challenges[i].gateway = sent.Gateway
	}
}

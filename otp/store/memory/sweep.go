package memory

import "time"

// sweepBatch is how many identities the sweeper looks at per hold of a
// shard's lock. Between batches it lets the lock go, so a request waits for
// one batch at most, however many identities the store holds. (A variable
// for tests only.)
var sweepBatch = 256

// sweepPaused, when set (tests), runs between two batches of a shard's
// sweep, with the shard's lock free.
var sweepPaused func(sh *shard)

// Sweep removes every challenge and counter that has expired at now. It
// holds one shard's lock at a time, and that for one batch of identities
// at a time, so operations go on meanwhile.
func (s *Store) Sweep(now time.Time) {
	n := nanos(now)
	var subjects []string
	for i := range s.shards {
		subjects = s.shards[i].sweep(n, subjects[:0])
	}
	s.sweepLimits(now)
	s.sweepLookups(now)
	s.sweepClaims(now)
	s.sweepReplays(now)
	s.sweepBreaker(now)
	s.sweepHistory(now)
}

// sweep drops the shard's expired challenges and idle identities. It copies
// the subjects under the lock (string headers only), then goes through them
// sweepBatch at a time, each batch under the lock. An identity added
// meanwhile waits for the next sweep; one dropped meanwhile is skipped.
// subjects is scratch space, returned for reuse.
func (sh *shard) sweep(now int64, subjects []string) []string {
	sh.mu.Lock()
	for subject := range sh.identities {
		subjects = append(subjects, subject)
	}
	sh.mu.Unlock()
	for rest := subjects; len(rest) > 0; {
		batch := rest[:min(sweepBatch, len(rest))]
		rest = rest[len(batch):]
		sh.mu.Lock()
		for _, subject := range batch {
			if id := sh.identities[subject]; id != nil {
				id.expire(now)
				if id.empty(now) {
					delete(sh.identities, subject)
				}
			}
		}
		sh.mu.Unlock()
		if sweepPaused != nil && len(rest) > 0 {
			sweepPaused(sh)
		}
	}
	clear(subjects) // keep no subject alive until the next shard
	return subjects
}

package otp

// roomFor makes room in the revocation cache for subject, r.mu held. A
// full cache drops one identity per new one: one with no revocation known
// among the first evictScan it iterates, else the first it saw. So the
// cache stays at its bound without a stall, dropped identities are read
// again once each rather than all 100,000 at once, and a known revocation
// is the last thing dropped: a dropped identity answers "not revoked"
// while the store is down (Revoked), which for a revoked one would let
// its old cookies pass until the store is back.
func (r *revocations) roomFor(subject string) {
	if r.m == nil {
		r.m = make(map[string]notBefore)
		return
	}
	if len(r.m) < maxRevocationCache {
		return
	}
	if _, ok := r.m[subject]; ok {
		return
	}
	evictOne(r.m, func(nb notBefore) bool { return nb.at.IsZero() })
}

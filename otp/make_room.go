package otp

// makeRoom drops from m, a memo that reached its bound, the entries that
// ended, then arbitrary ones, down to three quarters of bound: what is
// dropped is only asked for again (the refusal memo, the notes of codes
// sent).
func makeRoom[K comparable, V any](m map[K]V, ended func(V) bool, bound int) {
	for k, v := range m {
		if ended(v) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) <= bound*3/4 {
			return
		}
		delete(m, k)
	}
}

// evictScan is how many entries an insert into a full cache looks at for
// one it would rather drop before it drops the first it saw.
const evictScan = 8

// evictOne drops one entry of m: the first of the first evictScan it
// iterates that rather says to drop, else the first it saw (Go's map
// iteration starts at random, so that one is arbitrary). It never walks
// the whole map, so an insert into a full cache does not stall.
func evictOne[K comparable, V any](m map[K]V, rather func(V) bool) {
	var victim K
	seen := 0
	for k, v := range m {
		if rather(v) {
			victim = k
			break
		}
		if seen == 0 {
			victim = k
		}
		if seen++; seen == evictScan {
			break
		}
	}
	delete(m, victim)
}

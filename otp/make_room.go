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

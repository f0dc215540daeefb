package caddymodule

import (
	"sync"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The phone policy check of a number seen again, from memory (issue 17).
// libphonenumber's Parse and Format were a third of a refused send's CPU,
// and the send page and the send each checked the same number. The answer
// depends on the raw number and the policy only, and the policy (with
// deny_numbers and allow_numbers, read once at provision) is fixed for the
// handler's life: a config load provisions a new handler, a new policy and
// an empty memo. phone_file's rows are checked when the file is read and
// never go through here; a number a reread file adds or changes is a
// different raw string anyway.
//
// The memo holds numbers in memory only, as phone_file's table does;
// nothing of it is logged or stored.

// phoneMemoSize bounds the memo: a bot that varies its numbers evicts
// entries, and costs at most one check each, as without the memo.
const phoneMemoSize = 4096

// phoneMemo remembers policy.Check's answers, refusals included, for up to
// size raw numbers. When full, an arbitrary entry makes room.
type phoneMemo struct {
	policy *otp.PhonePolicy
	size   int

	mu      sync.RWMutex
	answers map[string]phoneAnswer
}

type phoneAnswer struct {
	phone otp.Phone
	err   error // a *otp.PhoneRefusal, never changed once made
}

func newPhoneMemo(policy *otp.PhonePolicy, size int) *phoneMemo {
	return &phoneMemo{policy: policy, size: size, answers: make(map[string]phoneAnswer, size)}
}

// checkPhone is h.policy.Check(raw) through the memo made for that policy
// (a handler put together without Provision, as some tests do, has none).
func (h *Handler) checkPhone(raw string) (otp.Phone, error) {
	if m := h.phones; m != nil && m.policy == h.policy {
		return m.check(raw)
	}
	return h.policy.Check(raw)
}

// check is policy.Check(raw), from memory when raw was checked before.
func (m *phoneMemo) check(raw string) (otp.Phone, error) {
	m.mu.RLock()
	a, ok := m.answers[raw]
	m.mu.RUnlock()
	if ok {
		return a.phone, a.err
	}
	phone, err := m.policy.Check(raw)
	if err != nil && !otp.IsPhoneRefusal(err) {
		return phone, err // never the case today; an error not to keep
	}
	m.mu.Lock()
	if len(m.answers) >= m.size {
		for k := range m.answers { // Go starts a map's range at random
			delete(m.answers, k)
			break
		}
	}
	m.answers[raw] = phoneAnswer{phone, err}
	m.mu.Unlock()
	return phone, err
}

// len is how many numbers the memo holds.
func (m *phoneMemo) len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.answers)
}

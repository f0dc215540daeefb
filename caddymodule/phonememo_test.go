package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The memo answers as the policy does, for numbers it passes and numbers
// it refuses, the first time and from memory.
func TestPhoneMemoAnswersAsThePolicy(t *testing.T) {
	t.Parallel()
	policy := cfPolicyJP(t)
	m := newPhoneMemo(policy, 16)
	for _, raw := range []string{htNumber, "090-1234-5678", "+14155550123", "03-1234-5678", "not a number", "+81 90-1234-5678 ext. 9"} {
		want, wantErr := policy.Check(raw)
		for round := range 2 {
			got, err := m.check(raw)
			if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) || otp.IsPhoneRefusal(err) != otp.IsPhoneRefusal(wantErr) {
				t.Errorf("%q (round %d): got %+v, %v; the policy says %+v, %v", raw, round, got, err, want, wantErr)
			}
		}
	}
	if n := m.len(); n != 6 {
		t.Errorf("the memo holds %d answers, want 6", n)
	}
}

// A bot varying its numbers can't grow the memo past its bound, from one
// goroutine or many, and every answer is still the policy's.
func TestPhoneMemoIsBounded(t *testing.T) {
	t.Parallel()
	policy := cfPolicyJP(t)
	const size = 8
	m := newPhoneMemo(policy, size)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				raw := fmt.Sprintf("+81901%d%06d", g, i)
				got, err := m.check(raw)
				if err != nil || got.E164 != raw {
					t.Errorf("%s: got %+v, %v", raw, got, err)
					return
				}
				if n := m.len(); n > size {
					t.Errorf("after %s the memo holds %d answers, want at most %d", raw, n, size)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := m.len(); n != size {
		t.Errorf("the memo holds %d answers, want %d (full)", n, size)
	}
	if phoneMemoSize > 4096 {
		t.Errorf("phoneMemoSize %d: the issue-17 bound is 4096", phoneMemoSize)
	}
}

// The memo lives and dies with the policy: a config load that adds the
// number to deny_numbers gets a new handler with an empty memo, and the
// number is refused at once though the old handler had it in memory.
func TestPhoneMemoGoesWithTheDenyList(t *testing.T) {
	t.Parallel()
	repl := caddy.NewReplacer()
	before := htNew(t, nil, func(h *Handler) { h.DenyNumbers = r32List(t, "+8150") })
	if p, err := before.h.phoneFor(context.Background(), "alice", repl); err != nil || p.E164 != htNumber {
		t.Fatalf("before: %+v, %v", p, err)
	}
	if before.h.phones.len() != 1 {
		t.Fatalf("the number is not in the memo: %d answers", before.h.phones.len())
	}
	after := htNew(t, nil, func(h *Handler) { h.DenyNumbers = r32List(t, htNumber) })
	if after.h.phones == before.h.phones || after.h.phones.len() != 0 {
		t.Fatal("the reloaded handler shares the old memo")
	}
	_, err := after.h.phoneFor(context.Background(), "alice", repl)
	var refusal *otp.PhoneRefusal
	if !errors.As(err, &refusal) || refusal.Reason != "deny_list" {
		t.Fatalf("after deny_numbers lists the number: %v, want a deny_list refusal", err)
	}
	if _, err := after.h.phoneFor(context.Background(), "alice", repl); !otp.IsPhoneRefusal(err) {
		t.Fatalf("from memory: %v, want the refusal again", err)
	}
}

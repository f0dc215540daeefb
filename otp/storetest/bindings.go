package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The phone-binding cases (SECURITY.md rule 13, max_identities_per_number).

const (
	numberA = "+819012345678"
	numberB = "+818087654321"
	carol   = "carol"
	dave    = "dave"
)

func (e *env) bindRequest(subject, e164 string, max int, now time.Time) otp.BindRequest {
	e.t.Helper()
	sealed, err := e.keys.SealPhone(subject, e164)
	if err != nil {
		e.t.Fatal(err)
	}
	return otp.BindRequest{
		Subject:                subject,
		PhoneHash:              e.keys.PhoneHash(e164),
		PhoneSealed:            sealed,
		PhoneMasked:            otp.MaskE164(e164),
		MaxIdentitiesPerNumber: max,
		Now:                    now,
	}
}

func (e *env) bind(subject, e164 string, max int) error {
	e.t.Helper()
	return e.store.BindPhone(e.t.Context(), e.bindRequest(subject, e164, max, t0))
}

func (e *env) mustBind(subject, e164 string, max int) {
	e.t.Helper()
	if err := e.bind(subject, e164, max); err != nil {
		e.t.Fatalf("bind %s to %s: %v", subject, otp.MaskE164(e164), err)
	}
}

func (e *env) wantTaken(subject, e164 string, max int) {
	e.t.Helper()
	if err := e.bind(subject, e164, max); !errors.Is(err, otp.ErrNumberTaken) {
		e.t.Fatalf("bind %s to %s: got %v, want ErrNumberTaken", subject, otp.MaskE164(e164), err)
	}
}

// wantBound checks that subject is bound to e164 and returns the binding.
func (e *env) wantBound(subject, e164 string) otp.BoundPhone {
	e.t.Helper()
	b, err := e.store.BoundPhone(e.t.Context(), subject)
	if err != nil {
		e.t.Fatalf("bound phone of %s: %v", subject, err)
	}
	got, err := e.keys.OpenPhone(subject, b.PhoneSealed)
	if err != nil || got != e164 || b.PhoneHash != e.keys.PhoneHash(e164) || b.PhoneMasked != otp.MaskE164(e164) {
		e.t.Fatalf("%s is bound to %q (%v) with hash %q and mask %q, want %s", subject, got, err, b.PhoneHash, b.PhoneMasked, otp.MaskE164(e164))
	}
	return b
}

func (e *env) wantUnbound(subject string) {
	e.t.Helper()
	if b, err := e.store.BoundPhone(e.t.Context(), subject); !errors.Is(err, otp.ErrNoBoundPhone) {
		e.t.Fatalf("bound phone of %s: got %+v, %v; want ErrNoBoundPhone", subject, b, err)
	}
}

func boundPhoneIsReadBack(t *testing.T, e *env) {
	req := e.bindRequest(alice, numberA, 1, t0)
	if err := e.store.BindPhone(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(req.PhoneSealed)
	// The store keeps its own copy: changing what went in or came out
	// changes nothing stored.
	req.PhoneSealed[0] ^= 0xff
	got := e.wantBound(alice, numberA)
	if !bytes.Equal(got.PhoneSealed, want) || !got.BoundAt.Equal(t0) {
		t.Fatalf("binding %+v, want the sealed number as bound and bound at t0", got)
	}
	got.PhoneSealed[0] ^= 0xff
	e.wantBound(alice, numberA)
}

func unboundIdentityHasNone(t *testing.T, e *env) {
	e.wantUnbound(bob)
	if err := e.store.UnbindPhone(t.Context(), bob); err != nil {
		t.Fatalf("unbinding an identity with no phone: %v", err)
	}
	e.wantUnbound(bob)
}

func rebindFreesOldNumber(t *testing.T, e *env) {
	e.mustBind(alice, numberA, 1)
	e.mustBind(alice, numberB, 1)
	e.wantBound(alice, numberB)
	e.mustBind(bob, numberA, 1)
	e.wantTaken(carol, numberB, 1)
}

func rebindSameNumber(t *testing.T, e *env) {
	e.mustBind(alice, numberA, 1)
	later := t0.Add(time.Hour)
	if err := e.store.BindPhone(t.Context(), e.bindRequest(alice, numberA, 1, later)); err != nil {
		t.Fatalf("binding alice to her own number again: %v", err)
	}
	if b := e.wantBound(alice, numberA); !b.BoundAt.Equal(later) {
		t.Fatalf("bound at %s, want the time of the second bind", b.BoundAt.Sub(t0))
	}
	e.wantTaken(bob, numberA, 1)
}

func numberTakenChangesNothing(t *testing.T, e *env) {
	e.mustBind(alice, numberA, 2)
	e.mustBind(bob, numberA, 2)
	e.mustBind(carol, numberB, 2)
	e.wantTaken(carol, numberA, 2)
	e.wantBound(carol, numberB)
	e.wantTaken(dave, numberB, 1)
	e.wantBound(alice, numberA)
	e.wantBound(bob, numberA)
	// A higher max lets carol in.
	e.mustBind(carol, numberA, 3)
	e.wantBound(carol, numberA)
}

func unbindFreesNumber(t *testing.T, e *env) {
	e.mustBind(alice, numberA, 1)
	if err := e.store.UnbindPhone(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	e.wantUnbound(alice)
	e.mustBind(bob, numberA, 1)
	if err := e.store.UnbindPhone(t.Context(), alice); err != nil {
		t.Fatalf("unbinding twice: %v", err)
	}
	e.wantBound(bob, numberA)
}

func invalidBindRefused(t *testing.T, e *env) {
	bad := map[string]func(*otp.BindRequest){
		"max 0":           func(r *otp.BindRequest) { r.MaxIdentitiesPerNumber = 0 },
		"no subject":      func(r *otp.BindRequest) { r.Subject = "" },
		"no phone hash":   func(r *otp.BindRequest) { r.PhoneHash = "" },
		"no sealed phone": func(r *otp.BindRequest) { r.PhoneSealed = nil },
	}
	for what, change := range bad {
		req := e.bindRequest(alice, numberA, 1, t0)
		change(&req)
		if err := e.store.BindPhone(t.Context(), req); err == nil {
			t.Errorf("a bind request with %s: got no error", what)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.store.BindPhone(ctx, e.bindRequest(alice, numberA, 1, t0)); err == nil {
		t.Error("a cancelled context: got no error")
	}
	e.wantUnbound(alice)
	e.mustBind(bob, numberA, 1)
}

func concurrentBindsOneWinner(t *testing.T, e *env) {
	const identities = 50
	errs := make([]error, identities)
	parallel(identities, func(i int) {
		errs[i] = e.store.BindPhone(t.Context(), e.bindRequest(fmt.Sprintf("user-%d", i), numberA, 1, t0))
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("user-%d and user-%d both bound the number", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, otp.ErrNumberTaken):
			t.Fatalf("user-%d: got %v, want nil or ErrNumberTaken", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no identity bound the number")
	}
	for i := range identities {
		if i == winner {
			e.wantBound(fmt.Sprintf("user-%d", i), numberA)
		} else {
			e.wantUnbound(fmt.Sprintf("user-%d", i))
		}
	}
}

func concurrentRebindsOneIdentity(t *testing.T, e *env) {
	const numbers = 20
	number := func(i int) string { return fmt.Sprintf("+8190%08d", 10000000+i) }
	errs := make([]error, numbers)
	parallel(numbers, func(i int) {
		errs[i] = e.store.BindPhone(t.Context(), e.bindRequest(alice, number(i), 1, t0))
	})
	for i, err := range errs {
		if err != nil && !errors.Is(err, otp.ErrBindConflict) {
			t.Fatalf("bind %d: got %v, want nil or ErrBindConflict", i, err)
		}
	}
	b, err := e.store.BoundPhone(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	final, err := e.keys.OpenPhone(alice, b.PhoneSealed)
	if err != nil {
		t.Fatal(err)
	}
	// Alice holds her final number and only that one: every other number
	// is free for someone else.
	for i := range numbers {
		other := fmt.Sprintf("other-%d", i)
		if number(i) == final {
			e.wantTaken(other, number(i), 1)
		} else {
			e.mustBind(other, number(i), 1)
		}
	}
}

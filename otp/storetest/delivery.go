package storetest

// The cases on delivery reports and voice calls.

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func (e *env) deliver(id string, st otp.DeliveryStatus, now time.Time) {
	e.t.Helper()
	if err := e.store.SetDelivery(e.t.Context(), alice, id, st, now); err != nil {
		e.t.Fatalf("set delivery %s: %v", st, err)
	}
}

func deliveryNeverDowngrades(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	if got := e.live("c1", t0).Delivery; got != "" {
		t.Fatalf("a new challenge has delivery %q", got)
	}
	for _, step := range []struct {
		report, want otp.DeliveryStatus
	}{
		{otp.DeliveryQueued, otp.DeliveryQueued},
		{otp.DeliverySent, otp.DeliverySent},
		{otp.DeliveryQueued, otp.DeliverySent},
		{otp.DeliveryDelivered, otp.DeliveryDelivered},
		{otp.DeliverySent, otp.DeliveryDelivered},
	} {
		e.deliver("c1", step.report, t0)
		if got := e.live("c1", t0).Delivery; got != step.want {
			t.Fatalf("after %q the status is %q, want %q", step.report, got, step.want)
		}
	}
}

func resendClearsDelivery(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	e.deliver("c1", otp.DeliveryFailed, t0)
	if _, err := e.resend("c1", "222222", t0.Add(cooldownBase)); err != nil {
		t.Fatal(err)
	}
	if got := e.live("c1", t0.Add(cooldownBase)).Delivery; got != "" {
		t.Fatalf("the new code inherited the old one's status %q", got)
	}
}

func deliveryForGoneChallengeDropped(t *testing.T, e *env) {
	e.deliver("never-made", otp.DeliveryDelivered, t0)
	e.gone(alice, "never-made", t0)
	e.issue("c1", "111111", t0)
	if got := e.verify("c1", "111111", t0); got.Status != otp.VerifyOK {
		t.Fatalf("verify %v", got.Status)
	}
	e.deliver("c1", otp.DeliveryDelivered, t0)
	e.gone(alice, "c1", t0)
}

func callsHaveTheirOwnLimit(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	now, sends := t0, 1
	call := func(code string) (*otp.Challenge, error) {
		now = now.Add(otp.Cooldown(sends, cooldownBase, cooldownMax))
		sends++
		req := e.resendRequest("c1", code, now)
		req.Voice, req.MaxCalls = true, 2
		return e.store.Issue(e.t.Context(), req)
	}
	for i, code := range []string{"222222", "333333"} {
		c, err := call(code)
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		if c.Calls != i+1 || c.Sends != i+2 {
			t.Fatalf("after call %d: calls %d sends %d", i+1, c.Calls, c.Sends)
		}
	}
	if _, err := call("444444"); !errors.Is(err, otp.ErrCallLimit) {
		t.Fatalf("a third call: %v, want ErrCallLimit", err)
	}
	if got := e.verify("c1", "333333", now); got.Status != otp.VerifyOK {
		t.Fatalf("the refused call changed the code: %v", got.Status)
	}
}

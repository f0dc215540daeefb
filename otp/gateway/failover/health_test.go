package failover_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/failover"
)

// checked is a gateway with a health check that answers err.
type checked struct {
	fake
	health error
}

func (c *checked) Health(context.Context) error { return c.health }

func TestFailoverHealthReportsEachMember(t *testing.T) {
	t.Parallel()
	up := &checked{}
	down := &checked{health: errors.New("kannel: unreachable")}
	plain := &fake{}
	cases := []struct {
		name    string
		members []failover.Member
		want    otp.HealthStatus
		each    []otp.HealthStatus
		err     string
	}{
		{"one member up makes the chain healthy", []failover.Member{{"kannel", down}, {"twilio", up}},
			otp.HealthOK, []otp.HealthStatus{otp.HealthDown, otp.HealthOK}, ""},
		{"every member down makes it down", []failover.Member{{"kannel", down}, {"twilio", down}},
			otp.HealthDown, []otp.HealthStatus{otp.HealthDown, otp.HealthDown}, "every gateway is down"},
		{"a member with no check is unknown, and so is a chain with nothing up", []failover.Member{{"kannel", down}, {"http", plain}},
			otp.HealthUnknown, []otp.HealthStatus{otp.HealthDown, otp.HealthUnknown}, "no gateway known healthy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, err := failover.New(failover.Config{}, tc.members...)
			if err != nil {
				t.Fatal(err)
			}
			h := otp.CheckHealth(t.Context(), "failover", g)
			if h.Status != tc.want || len(h.Members) != len(tc.each) {
				t.Fatalf("health %+v, want %s with %d members", h, tc.want, len(tc.each))
			}
			for i, m := range h.Members {
				if m.Gateway != tc.members[i].Name || m.Status != tc.each[i] {
					t.Errorf("member %d: %+v, want %s %s", i, m, tc.members[i].Name, tc.each[i])
				}
			}
			err = g.Health(t.Context())
			if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Health: %v, want an error containing %q", err, tc.err)
			}
			if tc.want == otp.HealthUnknown && !errors.Is(err, otp.ErrHealthUnknown) {
				t.Fatalf("Health: %v, want it to wrap ErrHealthUnknown", err)
			}
			if up.count()+down.count()+plain.count() != 0 {
				t.Fatal("a health check sent a message")
			}
		})
	}
}

func TestFailoverHealthShowsAnOpenCircuit(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	broken := &checked{}
	broken.set(&otp.GatewayError{Gateway: "kannel", Kind: otp.NotSent, Reason: "unreachable"})
	g, err := failover.New(failover.Config{FailureThreshold: 1, OpenFor: time.Minute, Clock: clock}, failover.Member{Name: "kannel", Gateway: broken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Send(t.Context(), otp.Message{To: "+819012345678"}); err == nil {
		t.Fatal("send through a broken gateway succeeded")
	}
	h := g.HealthReport(t.Context())
	if len(h) != 1 || !strings.Contains(h[0].Error, "circuit open") {
		t.Fatalf("report %+v, want the open circuit named", h)
	}
	clock.Add(time.Minute)
	if h := g.HealthReport(t.Context()); strings.Contains(h[0].Error, "circuit open") {
		t.Fatalf("report %+v after the circuit's time: want it closed", h)
	}
}

package otp_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func TestSendTestSendsOneMessageWithNoCode(t *testing.T) {
	t.Parallel()
	for _, locale := range []string{"en", "ja"} {
		t.Run("in "+locale, func(t *testing.T) {
			t.Parallel()
			cfg := otp.DefaultConfig()
			cfg.ServiceName = "Example Corp"
			f := newFixture(t, cfg, nil)
			r, err := f.svc.SendTest(t.Context(), alicePhone, locale)
			if err != nil {
				t.Fatal(err)
			}
			if r.Gateway != "recording" {
				t.Fatalf("receipt %+v, want the gateway's", r)
			}
			sent := f.gateway.messages()
			if len(sent) != 1 {
				t.Fatalf("%d messages sent, want 1", len(sent))
			}
			m := sent[0]
			if m.To != alicePhone.E164 || m.Locale != locale || !strings.HasPrefix(m.Body, "Example Corp") {
				t.Fatalf("message %+v: want one to %s in %s naming the service", m, alicePhone.E164, locale)
			}
			if regexp.MustCompile(`[0-9]{4,}`).MatchString(m.Body) {
				t.Fatalf("the test message %q carries something like a code", m.Body)
			}
		})
	}
}

func TestSendTestIsCountedAgainstTheSendLimits(t *testing.T) {
	t.Parallel()
	cfg := noLimits()
	cfg.Limits.PerPhone = 2
	cfg.Limits.DailyBudget = 10
	f := newFixture(t, cfg, nil)
	for i := range 2 {
		if _, err := f.svc.SendTest(t.Context(), alicePhone, "en"); err != nil {
			t.Fatalf("test message %d: %v", i+1, err)
		}
	}
	_, err := f.svc.SendTest(t.Context(), alicePhone, "en")
	wantRateLimit(t, err, otp.LimitPhone, t0.Truncate(cfg.Limits.Window).Add(cfg.Limits.Window))
	if n := len(f.gateway.messages()); n != 2 {
		t.Fatalf("the gateway was called %d times, want 2: the refused test must not reach it", n)
	}
	b, err := f.svc.DailyBudget(t.Context())
	if err != nil || b.Used != 2 {
		t.Fatalf("daily budget %+v, %v: want the two test messages counted", b, err)
	}
	t.Run("and a real user's send shares the phone's limit", func(t *testing.T) {
		wantRateLimit(t, f.sendAs(t, "alice", alicePhone.E164, ""), otp.LimitPhone, t0.Truncate(cfg.Limits.Window).Add(cfg.Limits.Window))
	})
}

func TestSendTestRefusesWhatItCannotSend(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	if _, err := f.svc.SendTest(t.Context(), alicePhone, "fr"); err == nil || !strings.Contains(err.Error(), "expected en or ja") {
		t.Fatalf("locale fr: got %v, want a refusal naming the locales", err)
	}
	if _, err := f.svc.SendTest(t.Context(), otp.Phone{}, "en"); err == nil {
		t.Fatal("no number: got no error")
	}
	gwErr := errors.New("kannel: unreachable")
	f.gateway.err = gwErr
	if _, err := f.svc.SendTest(t.Context(), alicePhone, "en"); !errors.Is(err, otp.ErrSendFailed) || !errors.Is(err, gwErr) {
		t.Fatalf("gateway failure: got %v, want ErrSendFailed wrapping it", err)
	}
	if n := len(f.gateway.messages()); n != 1 {
		t.Fatalf("the gateway was called %d times, want 1 (only the send that passed the checks)", n)
	}
}

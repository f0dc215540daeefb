package otp

import (
	"context"
	"fmt"
	"strings"
)

// OperatorSubject is the identity an operator's test message is counted
// under in the per-identity send limit. The slash keeps it apart from the
// user names an identity provider hands out.
const OperatorSubject = "sms-stepup/operator"

// testTexts are the operator's test messages: no code, nothing to act on,
// short enough for one SMS in either encoding.
var testTexts = map[string]string{
	"en": "%s: test message from the operator. No action is needed.",
	"ja": "%s：運用担当者からのテスト送信です。操作は不要です。",
}

// SendTest sends one message with no code to phone through the gateway, so
// an operator can see the gateway, the number and the policy work end to
// end. It is a real SMS, so it is counted like one: against the per-phone,
// per-prefix, per-country and daily limits, and the per-identity limit of
// OperatorSubject, refused with *RateLimitError past any of them. The caller
// runs the phone policy first. Failures wrap ErrStoreUnavailable or
// ErrSendFailed as Send's do.
func (s *Service) SendTest(ctx context.Context, phone Phone, locale string) (Receipt, error) {
	text, ok := testTexts[locale]
	if !ok {
		return Receipt{}, fmt.Errorf("locale %q: expected %s", locale, strings.Join(Locales, " or "))
	}
	if phone.E164 == "" {
		return Receipt{}, fmt.Errorf("send test: no number")
	}
	if err := s.countTest(ctx, phone); err != nil {
		return Receipt{}, err
	}
	r, err := s.gateway.Send(ctx, Message{To: phone.E164, Body: fmt.Sprintf(text, s.cfg.ServiceName), Locale: locale, Ref: "operator-test"})
	if err != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrSendFailed, err)
	}
	return r, nil
}

// countTest counts a test message against the send limits. It makes no
// challenge, so no lock-out or cooldown applies: only the limits.
func (s *Service) countTest(ctx context.Context, phone Phone) error {
	now := s.clock.Now()
	checks := s.cfg.Limits.Checks(s.keys, phone, OperatorSubject, "")
	if len(checks) == 0 {
		return nil
	}
	res, err := s.store.Limit(ctx, LimitRequest{Now: now, Checks: checks})
	if err != nil {
		return storeErr(err)
	}
	if !res.Allowed {
		return &RateLimitError{Limit: res.Refused, RetryAt: res.RetryAt}
	}
	return nil
}

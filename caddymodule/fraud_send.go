package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// fraudRefused answers a send the fraud guard refused because the number's
// prefix, range or country is blocked: 429 until the block ends, and a
// page that says only that the number can't receive codes right now.
func (h *Handler) fraudRefused(v *visit, b *otp.BlockedError, logFields []zap.Field) outcome {
	o := outcome{}
	kind, _, _ := strings.Cut(b.Scope, ":")
	o.audit(zapcore.WarnLevel, "send refused: the fraud guard blocks the number's population", "send_refused",
		append(logFields, zap.String("reason", "fraud_guard"), zap.String("kind", kind), zap.String("scope", MaskedScope(b.Scope)), zap.Time("until", b.Until))...)
	secs := retryIn(h.clock.Now(), b.Until)
	o.retryAfter = strconv.Itoa(secs)
	data := v.msg("number_blocked")
	data.RetryIn = secs
	return h.withChallenge(v, o, http.StatusTooManyRequests, data, data)
}

// fraudBlockSet hears of each block the fraud guard sets (the policy's
// OnBlock): an audit entry, a Caddy event and the blocks metric.
func (h *Handler) fraudBlockSet(b otp.BreakerBlock) {
	h.audit(zapcore.WarnLevel, "fraud guard: sends to a population blocked (few of its codes were verified)", "fraud_guard_block",
		zap.String("kind", b.Kind()), zap.String("scope", MaskedScope(b.Scope)), zap.Time("until", b.Until),
		zap.Int("repeat", b.Level), zap.Int("sends", b.Sends), zap.Int("verified", b.Conversions))
}

// MaskedScope writes a fraud guard scope for logs and operators: a prefix
// or range with x for each digit it leaves out ("prefix:+4477009001xxxx"),
// so that it never reads as a whole number; a country as it is.
func MaskedScope(scope string) string {
	kind, value, _ := strings.Cut(scope, ":")
	switch kind {
	case otp.BreakerPrefix:
		return fmt.Sprintf("%s:%sxxxx", kind, value)
	case otp.BreakerRange:
		return fmt.Sprintf("%s:%sxxxxxx", kind, value)
	}
	return scope
}

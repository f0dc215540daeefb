package caddymodule

import (
	"context"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// riskWatchedPrefix: the fraud guard is watching a population of the
// number (its prefix, range or foreign country has had at least half the
// sends it judges and too few of them verified: otp.BreakerPolicy.Watches),
// so the send may be part of a pumping run heading for a block.
const riskWatchedPrefix = "watched_prefix"

// watchedPrefix reports whether the fraud guard is watching v's number. A
// visit whose number is not known yet (a page that does not show it) has
// no such signal. Counts that can't be read fail closed: the number is
// taken as watched, and the store error is audited.
func (h *Handler) watchedPrefix(ctx context.Context, v *visit) bool {
	if v.phone.E164 == "" {
		return false
	}
	watched, _, err := h.service.BreakerWatching(ctx, v.phone)
	if err != nil {
		h.audit(zapcore.ErrorLevel, "CAPTCHA risk: the fraud guard's counts could not be read; the number is taken as watched",
			"store_unavailable", zap.String("identity", v.identity), zap.String("phone", v.phone.Masked),
			zap.String("signal", riskWatchedPrefix), zap.Error(err))
		return true
	}
	return watched
}

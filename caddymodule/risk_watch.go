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

// knowPhone looks up v's number for a page's CAPTCHA when the page has not
// (the code page shows only the masked number its challenge keeps), so
// that the challenge it carries is as hard as the send from it will ask.
// A number that can't be looked up is left out: the send judges again.
func (h *Handler) knowPhone(ctx context.Context, v *visit) {
	if v.phone.E164 != "" || v.identity == "" {
		return
	}
	if p, ok := h.pendingPhone(v); ok {
		v.phone = p
		return
	}
	if p, err := h.phoneFor(ctx, v.identity, v.repl); err == nil {
		v.phone = p
	}
}

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

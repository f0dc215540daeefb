package caddymodule

import (
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// call handles POST {prefix}/call and {prefix}/api/call: a new code read
// out by phone. The code page offers the button only where the gateway can
// call, but a form or a script can post here whatever the page shows, so
// the endpoint checks too, before anything is sent, counted or replaced:
// the code the user has keeps working, and no send or cooldown is spent.
func (h *Handler) call(v *visit) error {
	if h.service.CanCall() {
		return h.send(v, true)
	}
	o := outcome{}
	o.audit(zapcore.InfoLevel, "call refused: the gateway cannot place calls", "call_refused",
		zap.String("identity", v.identity), zap.String("client_ip", clientIP(v.r)))
	data := v.msg("call_unavailable")
	return h.respond(v, h.withChallenge(v, o, http.StatusConflict, data, data))
}

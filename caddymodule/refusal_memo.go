package caddymodule

import (
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The service repeats the store's refusals of sends by a limit or a fraud
// guard block without asking the store again, for at most the store's
// window and otp.RefusalHold (otp/refusal_memo.go says why that is safe).
// The handler asks it first about the client's address, before the
// number is looked at: a pumping bot over its `limits { ip N }` window
// then costs neither the number's parse and policy, nor the CAPTCHA and
// carrier gates, nor a store step (issue 17). One mechanism: the address
// held here is the one the service holds for a send's own checks.

// repeatRefusal answers a send from an address whose refusal the service
// holds, as the store's refusal was answered; false: go on with the send.
func (h *Handler) repeatRefusal(v *visit, voice bool) (outcome, bool) {
	ip := clientIP(v.r)
	limited, ok := h.service.HeldAddressRefusal(ip)
	if !ok {
		return outcome{}, false
	}
	logFields := []zap.Field{zap.String("identity", v.identity), zap.String("client_ip", ip), h.deviceField(v), zap.Bool("repeated", true)}
	return h.sendRefused(v, otp.SendResult{Repeated: true}, limited, voice, logFields), true
}

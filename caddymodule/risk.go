package caddymodule

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The risk of a send, for captcha_when risky (issue 15): which signals
// fired. Each is a word that goes into the audit events as it is.
const (
	// riskNewDevice: the browser has no valid device cookie, or its device
	// never verified a code of this identity.
	riskNewDevice = "new_device"
	// riskNewIP: the client address (an IPv6 client by its /64) never
	// verified a code of this identity.
	riskNewIP = "new_ip"
	// riskRepeatSend: the identity was sent a code within the last hour.
	riskRepeatSend = "repeat_send"
	// riskBusyIP: the address has used more than half its send limit.
	riskBusyIP = "ip_past_half_limit"
)

// After these comes riskWatchedPrefix (risk_watch.go).

// risk is the signals that fired for one send, in the order above.
type risk struct {
	signals []string
}

func (r risk) count() int { return len(r.signals) }

func (r risk) field() zap.Field { return zap.Strings("risk", r.signals) }

// assessRisk judges the risk of a send by v's identity from what the store
// remembers of it (otp.Familiarity), the address's send count and the
// fraud guard's counts of the number. All the signals are in this one
// function, so what makes a send risky is read in one place.
func (h *Handler) assessRisk(ctx context.Context, v *visit) (risk, error) {
	now := h.clock.Now()
	f, err := h.familiar.Read(ctx, v.identity, now)
	if err != nil {
		return risk{}, err
	}
	var r risk
	ip := clientIP(v.r)
	if !f.KnowsDevice(h.keys, v.device) {
		r.signals = append(r.signals, riskNewDevice)
	}
	if !f.KnowsIP(h.keys, ip) {
		r.signals = append(r.signals, riskNewIP)
	}
	if f.SendsSince(now.Add(-time.Hour)) > 0 {
		r.signals = append(r.signals, riskRepeatSend)
	}
	limits := h.service.Config().Limits
	if check, ok := limits.CheckOf(h.keys, otp.LimitIP, ip); ok {
		n, err := h.store.LimitCount(ctx, check, now)
		if err != nil {
			return risk{}, err
		}
		if 2*n > check.Max {
			r.signals = append(r.signals, riskBusyIP)
		}
	}
	if h.watchedPrefix(ctx, v) {
		r.signals = append(r.signals, riskWatchedPrefix)
	}
	return r, nil
}

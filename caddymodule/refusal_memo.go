package caddymodule

import (
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// A pumping bot's address, once over its `limits { ip N }` window, is
// refused by the store on every send until the window ends: each refusal
// still cost the number's parse, the limit keys' HMACs and a store step.
// The handler now remembers the store's refusal for the address (its /64
// for IPv6, as the store counts it) and repeats it, before the number is
// looked at, until the window the store reported ends, or refusalHold has
// passed, whichever is first (issue 17).
//
// The store stays the authority. Only a refusal the store gave is
// repeated, to the address it counts, within the window it said; every
// send from that address is refused by the store in that window (the
// address limit is checked on every send, first sends and resends alike,
// and a window's count only goes down by an operator's reset). The hold
// bounds how long a reset goes unseen by this instance. An address the
// memo does not hold goes to the store as before, so a store outage is
// still a 503 for it (fail closed); a held one is a 429 meanwhile.

// refusalHold is the longest a refusal is repeated without asking the
// store: at 2,000 bot requests a second from one address, one in 20,000
// reaches the store.
const refusalHold = 10 * time.Second

// maxRefusedAddresses bounds the memo; full, it drops the ended entries,
// then arbitrary ones, down to three quarters.
const maxRefusedAddresses = 10_000

type addressRefusals struct {
	mu sync.Mutex
	by map[string]heldRefusal // by otp.LimitValue(otp.LimitIP, address)
}

type heldRefusal struct {
	retryAt time.Time // when the store's window ends
	until   time.Time // when to ask the store again
}

func newAddressRefusals() *addressRefusals {
	return &addressRefusals{by: make(map[string]heldRefusal)}
}

// refused is the store's refusal of address still held at now: the end of
// its window, and true.
func (a *addressRefusals) refused(address string, now time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	held, ok := a.by[address]
	if !ok {
		return time.Time{}, false
	}
	if !now.Before(held.until) {
		delete(a.by, address)
		return time.Time{}, false
	}
	return held.retryAt, true
}

// remember holds the store's refusal of address until retryAt, at most
// refusalHold from now.
func (a *addressRefusals) remember(address string, retryAt, now time.Time) {
	until := now.Add(refusalHold)
	if retryAt.Before(until) {
		until = retryAt
	}
	if !now.Before(until) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.by[address]; !ok && len(a.by) >= maxRefusedAddresses {
		a.shrink(now)
	}
	a.by[address] = heldRefusal{retryAt: retryAt, until: until}
}

// shrink drops the entries that ended, then arbitrary ones, down to three
// quarters of the bound.
func (a *addressRefusals) shrink(now time.Time) {
	for k, held := range a.by {
		if !now.Before(held.until) {
			delete(a.by, k)
		}
	}
	for k := range a.by {
		if len(a.by) <= maxRefusedAddresses*3/4 {
			return
		}
		delete(a.by, k)
	}
}

// limitedAddress is the client's address as the store's address limit
// counts it, or "" when that limit does not apply to v's sends.
func (h *Handler) limitedAddress(v *visit) string {
	ip := clientIP(v.r)
	if h.refusals == nil || ip == "" || h.service.Config().Limits.PerIP <= 0 {
		return ""
	}
	return otp.LimitValue(otp.LimitIP, ip)
}

// repeatRefusal answers a send from an address the store refused and the
// memo holds, as the store's refusal was answered; false: ask the store.
func (h *Handler) repeatRefusal(v *visit, voice bool) (outcome, bool) {
	address := h.limitedAddress(v)
	if address == "" {
		return outcome{}, false
	}
	retryAt, ok := h.refusals.refused(address, h.clock.Now())
	if !ok {
		return outcome{}, false
	}
	logFields := []zap.Field{zap.String("identity", v.identity), zap.String("client_ip", clientIP(v.r)), h.deviceField(v), zap.Bool("repeated", true)}
	return h.sendRefused(v, otp.SendResult{}, &otp.RateLimitError{Limit: otp.LimitIP, RetryAt: retryAt}, voice, logFields), true
}

// noteRefusal keeps the store's refusal of a send by the address limit.
func (h *Handler) noteRefusal(v *visit, err error) {
	var limited *otp.RateLimitError
	if !errors.As(err, &limited) || limited.Limit != otp.LimitIP {
		return
	}
	if address := h.limitedAddress(v); address != "" {
		h.refusals.remember(address, limited.RetryAt, h.clock.Now())
	}
}

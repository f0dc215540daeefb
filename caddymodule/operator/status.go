package operator

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// status reads the status of the handler, or of one identity.
func status(ctx context.Context, h Handler, req request) (result, error) {
	if req.Identity != "" {
		return identityStatusOf(ctx, h, req.Identity)
	}
	max := defaultLockedListed
	if req.Locked != nil {
		max = *req.Locked
	}
	return statusOf(ctx, h, max)
}

// decodeStatus reads the one of the two statuses that req asked for.
func decodeStatus(req request, raw json.RawMessage) (result, error) {
	if req.Identity != "" {
		return decodeAs[identityStatus](req, raw)
	}
	return decodeAs[operatorStatus](req, raw)
}

// operatorStatus is what `status` reports.
type operatorStatus struct {
	Time    time.Time     `json:"time"`
	Handler string        `json:"handler"`
	Store   storeStatus   `json:"store"`
	Budget  *budgetStatus `json:"daily_budget,omitempty"`
	Locked  *lockedStatus `json:"locked,omitempty"`
	// FraudGuard is the fraud guard's blocks in force.
	FraudGuard *fraudGuardStatus `json:"fraud_guard,omitempty"`
	Gateway    otp.GatewayHealth `json:"gateway"`
	// PhoneSources is each phone source's health, in order.
	PhoneSources []caddymodule.PhoneSourceHealth `json:"phone_sources,omitempty"`
}

type storeStatus struct {
	Type      string `json:"type"`
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

type budgetStatus struct {
	// Max 0 means no daily budget is configured.
	Max     int       `json:"max"`
	Used    int       `json:"used"`
	Left    int       `json:"left"`
	ResetAt time.Time `json:"reset_at"`
}

type lockedStatus struct {
	Total int              `json:"total"`
	First []lockedIdentity `json:"first"`
}

type lockedIdentity struct {
	Identity string    `json:"identity"`
	Failures int       `json:"failures"`
	Until    time.Time `json:"until"`
	// UntilUnlocked marks the hard lock after 100 wrong codes in a row,
	// which only an operator's unlock lifts.
	UntilUnlocked bool `json:"until_unlocked,omitempty"`
}

// statusOf reads the store (reachable, daily budget, up to maxLocked locked
// identities) and asks the gateway for its health. It returns the status
// even when the store can't be reached, with the store's error.
func statusOf(ctx context.Context, h Handler, maxLocked int) (operatorStatus, error) {
	st := operatorStatus{Time: h.Now().UTC(), Handler: h.Prefix()}
	st.Store.Type, st.Store.Address = h.DescribeStore()
	svc := h.Service()
	locked, total, err := svc.Locked(ctx, maxLocked)
	if err == nil {
		st.Store.Reachable = true
		st.Locked = &lockedStatus{Total: total, First: []lockedIdentity{}}
		for _, l := range locked {
			st.Locked.First = append(st.Locked.First, lockedIdentity{Identity: l.Subject, Failures: l.Failures, Until: l.Until.UTC(),
				UntilUnlocked: otp.IsHardLock(l.Until, st.Time)})
		}
		var b otp.Budget
		if b, err = svc.DailyBudget(ctx); err == nil {
			st.Budget = &budgetStatus{Max: b.Max, Used: b.Used, Left: b.Left(), ResetAt: b.ResetAt.UTC()}
			st.FraudGuard, err = fraudGuardOf(ctx, svc)
		}
	}
	if err != nil {
		st.Store.Error = storeError(err)
	}
	st.Gateway = h.GatewayHealth(ctx)
	st.PhoneSources = h.PhoneSourceHealth(ctx)
	return st, err
}

// failure is the store that can't be read, which the status reports.
func (st operatorStatus) failure() error {
	if st.Store.Reachable || st.Store.Error == "" {
		return nil
	}
	return errors.New(unreachableStore(st.Store.Type, st.Store.Address, st.Store.Error))
}

// identityStatus is what `status <identity>` reports.
type identityStatus struct {
	Identity    string     `json:"identity"`
	Failures    int        `json:"failures"`
	LockedUntil *time.Time `json:"locked_until,omitempty"`
	// UntilUnlocked marks the hard lock, which only an unlock lifts.
	UntilUnlocked bool       `json:"until_unlocked,omitempty"`
	Sends         int        `json:"sends"`
	NextSendAt    *time.Time `json:"next_send_at,omitempty"`
	// Phone is the number masked, and PhoneSource where it comes from
	// (enrolled, phone_file, or the phone placeholder at request time).
	Phone       string     `json:"phone,omitempty"`
	PhoneSource string     `json:"phone_source"`
	NotBefore   *time.Time `json:"not_before,omitempty"`
}

// identityStatusOf reads one identity's counters, number and not-before.
func identityStatusOf(ctx context.Context, h Handler, identity string) (identityStatus, error) {
	out := identityStatus{Identity: identity}
	now := h.Now()
	svc := h.Service()
	st, err := svc.Identity(ctx, identity)
	if err != nil {
		return out, err
	}
	out.Failures, out.Sends = st.Failures, st.Sends
	if st.Locked(now) {
		out.LockedUntil = utcPtr(st.LockedUntil)
		out.UntilUnlocked = otp.IsHardLock(st.LockedUntil, now)
	}
	if now.Before(st.NextSendAt) {
		out.NextSendAt = utcPtr(st.NextSendAt)
	}
	nb, err := svc.NotBefore(ctx, identity)
	if err != nil {
		return out, err
	}
	if !nb.IsZero() {
		out.NotBefore = utcPtr(nb)
	}
	switch phone, err := svc.BoundPhone(ctx, identity); {
	case err == nil:
		out.Phone, out.PhoneSource = phone.Masked, "enrolled"
	case !errors.Is(err, otp.ErrNoBoundPhone):
		return out, err
	default:
		out.Phone, out.PhoneSource = h.ConfiguredPhone(identity)
	}
	return out, nil
}

func utcPtr(t time.Time) *time.Time {
	u := t.UTC()
	return &u
}

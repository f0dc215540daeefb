package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// operator runs the operator actions of `caddy sms-stepup` on a provisioned
// handler: its service, store, phone policy and gateway. Each action that
// changes something writes one audit entry (logger sms_stepup.operator,
// field event "operator_<action>") with the identity, the masked number
// where there is one, and the operator's name; never a code or a full
// number. The command line calls these methods on a handler it provisions
// (store redis), and the admin API (admin.go) on the running handler
// (store memory); their errors read the same either way.
type operator struct {
	h     *Handler
	audit *zap.Logger
	// who names the operator in audit entries ($USER for the command line).
	who string
	// via is how the action came: "command_line" or "admin_api"; clientIP
	// is the admin API client's address.
	via, clientIP string
}

// operatorError is an action's failure in the words the operator reads,
// wrapping its cause.
type operatorError struct {
	msg string
	err error
}

func (e *operatorError) Error() string { return e.msg }
func (e *operatorError) Unwrap() error { return e.err }

// operatorName is who runs the command line: $USER, else the account's
// name, else "unknown".
func operatorName() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// operatorLog names the logger of operator audit entries, so Caddy's
// logging config can include or exclude them like a module's logs.
type operatorLog struct{}

func (operatorLog) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sms_stepup.operator", New: func() caddy.Module { return operatorLog{} }}
}

// record writes the audit entry of one action: at info level when it was
// done, at warn level with the error when it was not.
func (o *operator) record(event, msg string, err error, fields ...zap.Field) {
	fields = append(fields, zap.String("event", event), zap.String("operator", o.who), zap.String("handler", o.h.PathPrefix),
		zap.String("via", cmp.Or(o.via, "command_line")))
	if o.clientIP != "" {
		fields = append(fields, zap.String("client_ip", o.clientIP))
	}
	level := zapcore.InfoLevel
	if err != nil {
		level, msg = zapcore.WarnLevel, "operator "+strings.ReplaceAll(strings.TrimPrefix(event, "operator_"), "_", "-")+" failed"
		fields = append(fields, zap.String("result", "failed"), zap.Error(err))
	} else {
		fields = append(fields, zap.String("result", "ok"))
	}
	if ce := o.audit.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
}

// Unlock forgets identity's wrong-code count and lock-out.
func (o *operator) Unlock(ctx context.Context, identity string) error {
	err := o.h.service.Unlock(ctx, identity)
	o.record("operator_unlock", "operator unlocked an identity", err, zap.String("identity", identity))
	return err
}

// Revoke makes identity's step-up tokens authenticated before now stop
// passing, and returns the not-before and how long other instances may take
// to see it.
func (o *operator) Revoke(ctx context.Context, identity string) (time.Time, time.Duration, error) {
	nb, err := o.h.service.Revoke(ctx, identity)
	if err == nil {
		// Print the not-before as the store keeps it (Redis: milliseconds,
		// rounded up), which is what `status <identity>` shows.
		if stored, rerr := o.h.service.NotBefore(ctx, identity); rerr == nil && !stored.IsZero() {
			nb = stored
		}
	}
	o.record("operator_revoke", "operator revoked an identity's step-ups", err, zap.String("identity", identity), zap.Time("not_before", nb))
	return nb, o.h.service.Config().RevocationInterval(), err
}

// ResetNumber unbinds identity's enrolled number and returns it masked.
func (o *operator) ResetNumber(ctx context.Context, identity string) (string, error) {
	masked, err := o.h.service.ResetNumber(ctx, identity)
	o.record("operator_reset_number", "operator reset an identity's phone number", err, zap.String("identity", identity), phoneField(masked))
	if errors.Is(err, otp.ErrNoBoundPhone) {
		err = &operatorError{identity + " has no enrolled number in the store: nothing to reset", err}
	}
	return masked, err
}

// ResetBudget clears today's daily budget counter and returns what it had
// counted.
func (o *operator) ResetBudget(ctx context.Context) (otp.Budget, error) {
	before, err := o.h.service.DailyBudget(ctx)
	if err == nil {
		err = o.h.service.ResetLimit(ctx, otp.LimitDailyBudget, "")
	}
	o.record("operator_reset_budget", "operator reset the daily SMS budget", err, zap.Int("used_before", before.Used), zap.Int("budget", before.Max))
	return before, err
}

// sendTestResult is what a test message did.
type sendTestResult struct {
	Phone string `json:"phone"`
	// Gateway is the one that took the message: the receipt's, else the
	// handler's.
	Gateway   string `json:"gateway"`
	MessageID string `json:"message_id,omitempty"`
	// Status is the gateway's answer: "accepted" when it gave none.
	Status string `json:"status"`
}

// SendTest checks raw against the handler's phone policy and sends one test
// message with no code to it, counted against the send limits.
func (o *operator) SendTest(ctx context.Context, raw, locale string) (sendTestResult, error) {
	phone, err := o.h.policy.Check(raw)
	if err != nil {
		masked := ""
		var refusal *otp.PhoneRefusal
		if errors.As(err, &refusal) {
			masked = refusal.Masked
			err = fmt.Errorf("the phone policy refuses %s: %w", cmp.Or(masked, "the number"), refusal)
		}
		o.record("operator_send_test", "operator test message", err, phoneField(masked))
		return sendTestResult{}, err
	}
	r, err := o.h.service.SendTest(ctx, phone, locale)
	o.record("operator_send_test", "operator test message", err, phoneField(phone.Masked), zap.String("gateway", r.Gateway),
		zap.String("message_id", r.ID))
	var rl *otp.RateLimitError
	if errors.As(err, &rl) {
		err = &operatorError{fmt.Sprintf("not sent: the %s send limit is reached until %s", rl.Limit, rl.RetryAt.UTC().Format(time.RFC3339)), err}
	}
	return sendTestResult{Phone: phone.Masked, Gateway: cmp.Or(r.Gateway, moduleName(o.h.gateway)), MessageID: r.ID,
		Status: cmp.Or(string(r.Status), "accepted")}, err
}

// phoneField is the masked number for an audit entry, or nothing.
func phoneField(masked string) zap.Field {
	if masked == "" {
		return zap.Skip()
	}
	return zap.String("phone", masked)
}

// operatorStatus is what `status` reports.
type operatorStatus struct {
	Time    time.Time         `json:"time"`
	Handler string            `json:"handler"`
	Store   storeStatus       `json:"store"`
	Budget  *budgetStatus     `json:"daily_budget,omitempty"`
	Locked  *lockedStatus     `json:"locked,omitempty"`
	Gateway otp.GatewayHealth `json:"gateway"`
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

// Status reads the store (reachable, daily budget, up to maxLocked locked
// identities) and asks the gateway for its health. It returns the status
// even when the store can't be reached, with the store's error.
func (o *operator) Status(ctx context.Context, maxLocked int) (operatorStatus, error) {
	st := operatorStatus{Time: o.h.clock.Now().UTC(), Handler: o.h.PathPrefix}
	st.Store.Type, st.Store.Address = describeStore(o.h.store)
	locked, total, err := o.h.service.Locked(ctx, maxLocked)
	if err == nil {
		st.Store.Reachable = true
		st.Locked = &lockedStatus{Total: total, First: []lockedIdentity{}}
		for _, l := range locked {
			st.Locked.First = append(st.Locked.First, lockedIdentity{Identity: l.Subject, Failures: l.Failures, Until: l.Until.UTC(),
				UntilUnlocked: otp.IsHardLock(l.Until, st.Time)})
		}
		var b otp.Budget
		if b, err = o.h.service.DailyBudget(ctx); err == nil {
			st.Budget = &budgetStatus{Max: b.Max, Used: b.Used, Left: b.Left(), ResetAt: b.ResetAt.UTC()}
		}
	}
	if err != nil {
		st.Store.Error = storeError(err)
	}
	st.Gateway = otp.CheckHealth(ctx, moduleName(o.h.gateway), o.h.gateway)
	return st, err
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

// IdentityStatus reads one identity's counters, number and not-before.
func (o *operator) IdentityStatus(ctx context.Context, identity string) (identityStatus, error) {
	out := identityStatus{Identity: identity}
	now := o.h.clock.Now()
	st, err := o.h.service.Identity(ctx, identity)
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
	nb, err := o.h.service.NotBefore(ctx, identity)
	if err != nil {
		return out, err
	}
	if !nb.IsZero() {
		out.NotBefore = utcPtr(nb)
	}
	switch phone, err := o.h.service.BoundPhone(ctx, identity); {
	case err == nil:
		out.Phone, out.PhoneSource = phone.Masked, "enrolled"
	case !errors.Is(err, otp.ErrNoBoundPhone):
		return out, err
	case o.h.phones[identity].E164 != "":
		out.Phone, out.PhoneSource = o.h.phones[identity].Masked, "phone_file"
	case o.h.Phone != "":
		out.PhoneSource = "phone placeholder " + o.h.Phone + " (read per request)"
	default:
		out.PhoneSource = "none"
	}
	return out, nil
}

func utcPtr(t time.Time) *time.Time {
	u := t.UTC()
	return &u
}

// describeStore names the store's type and where it is, never with a
// password.
func describeStore(store otp.Store) (typ, addr string) {
	switch s := store.(type) {
	case *RedisStore:
		opts, err := s.options()
		if err != nil {
			return "redis", "(" + err.Error() + ")"
		}
		addr = strings.Join(opts.Addrs, ",")
		if opts.MasterName != "" {
			addr = "sentinel master " + opts.MasterName + " via " + addr
		}
		if len(opts.Addrs) == 1 && opts.MasterName == "" {
			addr += fmt.Sprintf(" db %d", opts.DB)
		}
		if opts.TLSConfig != nil {
			addr += " (tls)"
		}
		return "redis", addr
	case *MemoryStore:
		return "memory", "in-process (" + cmp.Or(s.Name, "default") + ")"
	}
	return fmt.Sprintf("%T", store), ""
}

// storeError is a store failure in one line, without the "store
// unavailable" prefix the caller's sentence already says.
func storeError(err error) string {
	return strings.TrimPrefix(err.Error(), otp.ErrStoreUnavailable.Error()+": ")
}

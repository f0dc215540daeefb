package operator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The actions that change something, and what each reports. They act on
// the store, so they take effect on every instance that shares it.

type unlockResult struct {
	Identity string `json:"identity"`
}

// unlock forgets the identity's wrong-code count and lock-out.
func unlock(ctx context.Context, h Handler, req request) (result, error) {
	return unlockResult{Identity: req.Identity}, h.Service().Unlock(ctx, req.Identity)
}

func (r unlockResult) auditFields() []zap.Field {
	return []zap.Field{zap.String("identity", r.Identity)}
}

func (r unlockResult) text(w io.Writer, _ time.Time) {
	fmt.Fprintf(w, "unlocked %s: wrong-code count and lock-out cleared\n", r.Identity)
}

type revokeResult struct {
	Identity  string    `json:"identity"`
	NotBefore time.Time `json:"not_before"`
	// RevocationRefresh is a Go duration ("10s"): how long other
	// instances sharing the store may take to apply it.
	RevocationRefresh string `json:"revocation_refresh"`
}

// revoke makes the identity's step-up tokens authenticated before now stop
// passing.
func revoke(ctx context.Context, h Handler, req request) (result, error) {
	svc := h.Service()
	nb, err := svc.Revoke(ctx, req.Identity)
	if err == nil {
		// Report the not-before as the store keeps it (Redis:
		// milliseconds, rounded up), which is what `status <identity>`
		// shows.
		if stored, rerr := svc.NotBefore(ctx, req.Identity); rerr == nil && !stored.IsZero() {
			nb = stored
		}
	}
	return revokeResult{Identity: req.Identity, NotBefore: nb.UTC(), RevocationRefresh: svc.Config().RevocationInterval().String()}, err
}

func (r revokeResult) auditFields() []zap.Field {
	return []zap.Field{zap.String("identity", r.Identity), zap.Time("not_before", r.NotBefore)}
}

func (r revokeResult) text(w io.Writer, _ time.Time) {
	fmt.Fprintf(w, "revoked %s: step-ups authenticated before %s no longer pass; every instance sharing the store applies it within %s\n",
		r.Identity, r.NotBefore.UTC().Format(rfc3339Milli), r.RevocationRefresh)
}

type resetNumberResult struct {
	Identity string `json:"identity"`
	// Phone is the number that was bound, masked.
	Phone string `json:"phone"`
}

// resetNumber unbinds the identity's enrolled number.
func resetNumber(ctx context.Context, h Handler, req request) (result, error) {
	masked, err := h.Service().ResetNumber(ctx, req.Identity)
	if errors.Is(err, otp.ErrNoBoundPhone) {
		err = &operatorError{req.Identity + " has no enrolled number in the store: nothing to reset", err}
	}
	return resetNumberResult{Identity: req.Identity, Phone: masked}, err
}

func (r resetNumberResult) auditFields() []zap.Field {
	return []zap.Field{zap.String("identity", r.Identity), phoneField(r.Phone)}
}

func (r resetNumberResult) text(w io.Writer, _ time.Time) {
	fmt.Fprintf(w, "reset the number of %s: %s is no longer bound; the next step-up enrols a number\n", r.Identity, r.Phone)
}

type resetBudgetResult struct {
	// Max 0: no daily budget is configured.
	Max        int `json:"max"`
	UsedBefore int `json:"used_before"`
}

// resetBudget clears today's daily budget counter, and reports what it
// had counted.
func resetBudget(ctx context.Context, h Handler, _ request) (result, error) {
	before, err := h.Service().DailyBudget(ctx)
	if err == nil {
		err = h.Service().ResetLimit(ctx, otp.LimitDailyBudget, "")
	}
	return resetBudgetResult{Max: before.Max, UsedBefore: before.Used}, err
}

func (r resetBudgetResult) auditFields() []zap.Field {
	return []zap.Field{zap.Int("used_before", r.UsedBefore), zap.Int("budget", r.Max)}
}

func (r resetBudgetResult) text(w io.Writer, _ time.Time) {
	if r.Max == 0 {
		fmt.Fprintln(w, "no daily budget is configured (daily_budget 0): nothing to reset")
		return
	}
	fmt.Fprintf(w, "daily budget reset: %d of %d were used today; now 0 used, %d left\n", r.UsedBefore, r.Max, r.Max)
}

type sendTestResult struct {
	Phone string `json:"phone"`
	// Gateway is the one that took the message: the receipt's, else the
	// handler's.
	Gateway   string `json:"gateway"`
	MessageID string `json:"message_id,omitempty"`
	// Status is the gateway's answer: "accepted" when it gave none.
	Status string `json:"status"`
}

// sendTest checks the number against the handler's phone policy and sends
// one test message with no code to it, counted against the send limits.
func sendTest(ctx context.Context, h Handler, req request) (result, error) {
	phone, err := h.CheckPhone(req.To)
	if err != nil {
		var refusal *otp.PhoneRefusal
		if errors.As(err, &refusal) {
			return sendTestResult{Phone: refusal.Masked}, fmt.Errorf("the phone policy refuses %s: %w", cmp.Or(refusal.Masked, "the number"), refusal)
		}
		return sendTestResult{}, err
	}
	r, err := h.Service().SendTest(ctx, phone, cmp.Or(req.Locale, otp.Locales[0]))
	var rl *otp.RateLimitError
	if errors.As(err, &rl) {
		err = &operatorError{fmt.Sprintf("not sent: the %s send limit is reached until %s", rl.Limit, rl.RetryAt.UTC().Format(time.RFC3339)), err}
	}
	return sendTestResult{Phone: phone.Masked, Gateway: cmp.Or(r.Gateway, h.GatewayName()), MessageID: r.ID,
		Status: cmp.Or(string(r.Status), "accepted")}, err
}

func (r sendTestResult) auditFields() []zap.Field {
	fields := []zap.Field{phoneField(r.Phone)}
	if r.Gateway != "" {
		fields = append(fields, zap.String("gateway", r.Gateway), zap.String("message_id", r.MessageID))
	}
	return fields
}

func (r sendTestResult) text(w io.Writer, _ time.Time) {
	fmt.Fprintf(w, "sent a test message to %s through %s: %s (message id: %s)\n", r.Phone, r.Gateway, r.Status, cmp.Or(r.MessageID, "none given"))
}

// phoneField is the masked number for an audit entry, or nothing.
func phoneField(masked string) zap.Field {
	if masked == "" {
		return zap.Skip()
	}
	return zap.String("phone", masked)
}

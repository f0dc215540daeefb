package operator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// action is one operator action. Its entry in actions is all there is of
// it: the subcommand `caddy sms-stepup <name>` (command.go) and the admin
// route /sms-stepup/<name> (admin.go) are made from it, and both check
// what they are given against its takes.
type action struct {
	// name is the subcommand's and the route's.
	name string
	// short, long and example are the subcommand's help.
	short, long, example string
	// takes names the fields of fields.go the action needs or may have;
	// it refuses any other (but the handler, config and operator that
	// every request may name).
	takes map[string]need
	// audit is the message of the audit entry that an action which
	// changes something writes; its route takes POST only. An action
	// without one only reads, and its route takes GET.
	audit string
	// run does it on a provisioned handler. It returns what it did, or
	// as much as it knows of it, also with an error: the audit entry
	// records that.
	run func(ctx context.Context, h Handler, req request) (result, error)
	// decode reads run's result for req from the admin API's JSON, for
	// the command line that went through it (the memory store).
	decode func(req request, raw json.RawMessage) (result, error)
}

// result is what an action did. The admin API answers with it as JSON;
// the command line prints it as text, or with --json as that JSON.
type result interface {
	// text writes it for people; now is the time it is read against.
	text(w io.Writer, now time.Time)
}

// audited is the result of an action that changes something: what its
// audit entry records besides who, where and how it went.
type audited interface {
	auditFields() []zap.Field
}

// selfReporting is a result that carries its own failure: the status of a
// store that can't be read says so, and is still worth showing. The admin
// API answers with it (200), and the command line prints it and fails.
type selfReporting interface {
	failure() error
}

// decodeAs reads a result of type R.
func decodeAs[R result](_ request, raw json.RawMessage) (result, error) {
	var r R
	err := json.Unmarshal(raw, &r)
	return r, err
}

// actions are the operator actions, in the order help lists them.
var actions = []*action{
	{
		name:  "unlock",
		short: "Forgets an identity's wrong codes and lock-out",
		long: `
Forgets the identity's consecutive wrong codes and ends its lock-out at once,
on every instance sharing the store. Send counts, cooldowns and send limits
stay as they are.`,
		example: "  caddy sms-stepup unlock alice",
		takes:   map[string]need{"identity": required},
		audit:   "operator unlocked an identity",
		run:     unlock,
		decode:  decodeAs[unlockResult],
	},
	{
		name:  "revoke",
		short: "Ends an identity's step-ups: its cookies stop passing",
		long: `
Sets the identity's "not before" to now: step-up tokens (cookies) it got
before stop passing, and its codes in flight stop working. Each Caddy
instance sharing the store sees the revocation within its revocation refresh
interval (10s by default), this one at once; the user steps up again with a
new code.`,
		example: "  caddy sms-stepup revoke alice",
		takes:   map[string]need{"identity": required},
		audit:   "operator revoked an identity's step-ups",
		run:     revoke,
		decode:  decodeAs[revokeResult],
	},
	{
		name:  "reset-number",
		short: "Unbinds an identity's enrolled phone number",
		long: `
Removes the phone number the identity enrolled (with the handler's enroll
option), so that its next step-up enrols a number afresh: the operator's
reset for a user who lost their phone. It prints the old number masked.
Numbers from phone_file or the phone placeholder are not in the store: change
them where they come from.`,
		example: "  caddy sms-stepup reset-number alice",
		takes:   map[string]need{"identity": required},
		audit:   "operator reset an identity's phone number",
		run:     resetNumber,
		decode:  decodeAs[resetNumberResult],
	},
	{
		name:  "reset-budget",
		short: "Clears today's daily SMS budget counter",
		long: `
Sets the count of today's daily SMS budget (UTC day) back to zero, on every
instance sharing the store: sends resume at once after the budget was spent.
Find out first why it was spent (SMS pumping?): 'caddy sms-stepup status'.`,
		example: "  caddy sms-stepup reset-budget",
		audit:   "operator reset the daily SMS budget",
		run:     resetBudget,
		decode:  decodeAs[resetBudgetResult],
	},
	{
		name:  "unblock",
		short: "Lifts a fraud guard block on a number prefix, range or country",
		long: `
Lifts the fraud guard's block on a prefix (the number without its last 4
digits), a range (without its last 6) or a country, as 'caddy sms-stepup
status' lists them, on every instance sharing the store, and forgets their
counts so that they are judged afresh. A block is never lifted by a user.`,
		example: `  caddy sms-stepup unblock +4477009001
  caddy sms-stepup unblock GB`,
		takes:  map[string]need{"target": required},
		audit:  "operator lifted a fraud guard block",
		run:    unblock,
		decode: decodeAs[unblockResult],
	},
	{
		name:  "status",
		short: "Shows the store, the daily budget, locked identities, fraud guard blocks and gateway health",
		long: `
Without an identity: whether the store answers (and where it is), the daily
SMS budget used and left and when it resets, how many identities are locked
out (and the first few, with their wrong codes and until when), the fraud
guard's blocks in force (and until when), and the gateway's health. Health checks send nothing: Kannel is asked for a message
without a receiver, Twilio for the account; other gateways are "unknown".

With an identity: its wrong codes, lock-out, codes sent, when it may have
the next, its number (masked) and its not-before.

It exits non-zero when the store can't be read.`,
		example: `  caddy sms-stepup status
  caddy sms-stepup status --json | jq .daily_budget.left
  caddy sms-stepup status alice`,
		takes:  map[string]need{"identity": optional, "locked": optional},
		run:    status,
		decode: decodeStatus,
	},
	{
		name:  "send-test",
		short: "Sends one test SMS, with no code, through the configured gateway",
		long: `
Checks the number against the handler's phone policy, then sends one real SMS
with no code through the configured gateway. It counts against the send
limits and the daily budget like any code (as the identity
"sms-stepup/operator"). It prints the number masked and the gateway's answer;
a number the policy refuses (an IP phone such as Japan's 050, a premium or
toll-free number, a country not allowed ...) is refused with the reason.`,
		example: `  caddy sms-stepup send-test --to 090-1234-5678
  caddy sms-stepup send-test --to +819012345678 --locale ja`,
		takes:  map[string]need{"to": required, "locale": optional},
		audit:  "operator test message",
		run:    sendTest,
		decode: decodeAs[sendTestResult],
	},
	{
		name:  "history",
		short: "Shows the sends and verifications of an identity or a number prefix",
		long: `
Lists, newest first, the codes sent to the identity (or to numbers of the
prefix: the E.164 number without its last 4 digits) and how each went: sent,
refused (cooldown, a send limit, the fraud guard, a lock-out ...) or failed
at the gateway, and each code typed: ok, wrong_code, locked ... Numbers are
masked; the store keeps nothing else (history_retention, 7 days by default;
history_max entries per identity and per prefix, 1000 by default).`,
		example: `  caddy sms-stepup history alice
  caddy sms-stepup history --prefix +44770090 --since 1h
  caddy sms-stepup history alice --json | jq '.entries[] | select(.outcome != "sent")'`,
		takes:  map[string]need{"identity": optional, "prefix": optional, "since": optional},
		run:    history,
		decode: decodeAs[historyResult],
	},
}

// actionNamed finds the action called name.
func actionNamed(name string) (*action, bool) {
	for _, a := range actions {
		if a.name == name {
			return a, true
		}
	}
	return nil, false
}

// method is the one HTTP method the action's admin route takes.
func (a *action) method() string {
	if a.audit != "" {
		return http.MethodPost
	}
	return http.MethodGet
}

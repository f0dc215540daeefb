package otp

import (
	"context"
	"net/http"
)

// A Gateway sends SMS. What else a gateway can do is a capability, each a
// small interface of its own:
//
//   - voice: Caller, a code read out in a phone call;
//   - receipts: ReceiptParser, delivery reports taken at Message.ReceiptURL;
//   - health: HealthChecker (and HealthReporter for a chain), a check of the
//     provider that sends nothing.
//
// Code that needs a capability finds it once, with CapabilitiesOf, when the
// gateway is set up, and keeps it in a typed field: a nil field is a
// capability the gateway lacks. Asking a value later whether it has a method
// would ask the wrong thing of a wrapper (which has every method, whatever
// it wraps) or of a gateway whose configuration decides (a Twilio account
// can call only from a number of its own).

// Caller reads a code out in a phone call: the voice capability.
type Caller interface {
	// Call phones m.To and speaks m.Body.
	Call(ctx context.Context, m Message) (Receipt, error)
}

// ReceiptParser takes delivery reports at a gateway's receipt URL: the
// receipts capability. ParseReceipt authenticates the request where the
// provider signs it (on top of the unguessable token in the URL, which the
// caller checks) and returns what the provider reports: the Status, and
// where it gives them its message ID and its error code.
type ReceiptParser interface {
	ParseReceipt(r *http.Request, receiptURL string) (Receipt, error)
}

// Capabilities are what a gateway can do besides sending SMS. A nil field
// is a capability the gateway does not have.
type Capabilities struct {
	// Voice places calls.
	Voice Caller
	// Receipts parse delivery reports, by the gateway name in the report's
	// URL (the name a gateway passes to Message.ReceiptURL): a chain of
	// gateways has one entry for each member that takes reports.
	Receipts map[string]ReceiptParser
	// Health checks the provider without sending anything; it may also be
	// a HealthReporter, for a chain.
	Health HealthChecker
}

// CapabilityReporter is a gateway that says what it can do: one whose
// capabilities depend on its configuration or on its members, or one that
// wraps another and passes on the capabilities of the gateway inside.
type CapabilityReporter interface {
	Capabilities() Capabilities
}

// CapabilitiesOf finds what gw, configured under the name name, can do: what
// it reports, if it is a CapabilityReporter, or else the capability
// interfaces it implements (its delivery reports then come to name).
func CapabilitiesOf(name string, gw Gateway) Capabilities {
	if r, ok := gw.(CapabilityReporter); ok {
		return r.Capabilities()
	}
	var c Capabilities
	c.Voice, _ = gw.(Caller)
	if p, ok := gw.(ReceiptParser); ok {
		c.Receipts = map[string]ReceiptParser{name: p}
	}
	c.Health, _ = gw.(HealthChecker)
	return c
}

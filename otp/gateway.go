package otp

import (
	"context"
	"errors"
	"fmt"
)

// Message is one SMS (or, for Call, one voice call) to send.
type Message struct {
	// To is the destination in E.164.
	To string
	// Body is the full text, code included. Gateways must not log it.
	Body string
	// Locale is the language of Body ("ja", "en"), for gateways that choose
	// an encoding or a voice by it.
	Locale string
	// Ref names the challenge, for logs.
	Ref string
	// ReceiptBase, when set, is the URL under which delivery reports are
	// taken: a gateway that supports them asks its provider to report to
	// ReceiptBase + "/" + its own name + "/" + ReceiptToken.
	ReceiptBase  string
	ReceiptToken string
}

// ReceiptURL is where a gateway named name asks for delivery reports, or ""
// when the message takes none.
func (m Message) ReceiptURL(name string) string {
	if m.ReceiptBase == "" || m.ReceiptToken == "" {
		return ""
	}
	return m.ReceiptBase + "/" + name + "/" + m.ReceiptToken
}

// Receipt is what a gateway says of a message: when it accepts it, and
// later in a delivery report (see ReceiptParser).
type Receipt struct {
	// Gateway names the gateway that accepted it (the inner one, behind a
	// failover).
	Gateway string
	// ID is the provider's message id, if it gives one.
	ID     string
	Status DeliveryStatus
	// Error is the provider's error code for a message it could not
	// deliver, where a delivery report gives one.
	Error string
	// Token is the message's receipt token when the report carries it in
	// its body rather than in the URL: a provider that posts every report
	// to one registered address and echoes a tag of the request. The
	// receipt endpoint then records the report against this token, which
	// it opens and checks as it would the URL's.
	Token string
}

// DeliveryStatus is how far a message got, as providers report it.
type DeliveryStatus string

// Delivery statuses, in the order they can follow each other.
const (
	DeliveryQueued    DeliveryStatus = "queued"
	DeliverySent      DeliveryStatus = "sent"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Rank orders statuses so a late "sent" never overwrites "delivered".
func (s DeliveryStatus) Rank() int {
	switch s {
	case DeliveryQueued:
		return 1
	case DeliverySent:
		return 2
	case DeliveryDelivered, DeliveryFailed:
		return 3
	}
	return 0
}

// Gateway sends SMS. Implementations live in otp/gateway/... and must honour
// ctx's deadline. Send is called once per user action: a gateway must not
// retry in a way that could deliver two messages, and must report failures
// as *GatewayError so the caller knows whether the message may have gone.
// What a gateway can do besides Send is in capabilities.go.
type Gateway interface {
	Send(ctx context.Context, m Message) (Receipt, error)
}

// ErrorKind says what a gateway failure means for the message.
type ErrorKind int

const (
	// NotSent: the provider surely did not accept the message (it could not
	// be reached, or answered that it did not take it). Trying another
	// gateway cannot make two SMS.
	NotSent ErrorKind = iota + 1
	// Rejected: the provider refused this message for good (an invalid or
	// unsubscribed number). Another gateway would refuse it too.
	Rejected
	// Unknown: the request reached the provider but no answer came back; it
	// may have accepted the message. Trying another gateway could send a
	// second SMS, so nothing more is tried.
	Unknown
)

func (k ErrorKind) String() string {
	switch k {
	case NotSent:
		return "not_sent"
	case Rejected:
		return "rejected"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// GatewayError is a failure to send, classified.
type GatewayError struct {
	Gateway string
	Kind    ErrorKind
	// Reason is a stable word for logs, metrics and the user's message:
	// unreachable, no_answer, invalid_number, unsubscribed, rate_limited,
	// auth, rejected, server_error, circuit_open.
	Reason string
	// Code is the provider's own error code, if any.
	Code string
	Err  error
}

func (e *GatewayError) Error() string {
	s := e.Gateway + ": " + e.Kind.String() + " (" + e.Reason
	if e.Code != "" {
		s += ", code " + e.Code
	}
	s += ")"
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *GatewayError) Unwrap() error { return e.Err }

// ErrorKindOf classifies any error from a gateway; an error that is not a
// *GatewayError may have happened after the provider accepted the message,
// so it counts as Unknown.
func ErrorKindOf(err error) ErrorKind {
	var ge *GatewayError
	if errors.As(err, &ge) {
		return ge.Kind
	}
	return Unknown
}

// ErrSendFailed wraps a gateway failure: the user is told the code could not
// be sent and may try again.
var ErrSendFailed = errors.New("could not send the code")

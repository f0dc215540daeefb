package otp

import (
	"context"
	"errors"
)

// Message is one SMS to send.
type Message struct {
	// To is the destination in E.164.
	To string
	// Body is the full text, code included. Gateways must not log it.
	Body string
	// Locale is the language of Body ("ja", "en"), for gateways that choose
	// an encoding or a voice by it.
	Locale string
	// Ref names the challenge, for delivery receipts.
	Ref string
}

// Receipt is what a gateway says after accepting a message.
type Receipt struct {
	Gateway string
	ID      string
}

// Gateway sends SMS. Implementations live in otp/gateway/... and must honour
// ctx's deadline. Send is called once per user action: a gateway must not
// retry in a way that could deliver two messages.
type Gateway interface {
	Send(ctx context.Context, m Message) (Receipt, error)
}

// ErrSendFailed wraps a gateway failure: the user is told the code could not
// be sent and may try again.
var ErrSendFailed = errors.New("could not send the code")

// Package console is a development gateway: it sends no SMS. Without an
// outbox it writes each message, code included, to the log so a developer
// can walk the flow; with an outbox it appends one JSON line per message to a
// file and logs neither the code nor the number.
package console

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// Gateway is the console gateway.
type Gateway struct {
	logger *zap.Logger
	outbox string
	clock  otp.Clock

	mu sync.Mutex
}

// New returns a console gateway writing to logger, or to the file outbox when
// it is not empty.
func New(logger *zap.Logger, outbox string, clock otp.Clock) *Gateway {
	if logger == nil {
		logger = zap.NewNop()
	}
	if clock == nil {
		clock = otp.SystemClock{}
	}
	return &Gateway{logger: logger, outbox: outbox, clock: clock}
}

// OutboxLine is one message in the outbox file.
type OutboxLine struct {
	Time   time.Time `json:"time"`
	To     string    `json:"to"`
	Body   string    `json:"body"`
	Locale string    `json:"locale,omitempty"`
	Ref    string    `json:"ref,omitempty"`
}

// Send implements otp.Gateway.
func (g *Gateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	if err := ctx.Err(); err != nil {
		return otp.Receipt{}, err
	}
	if g.outbox == "" {
		g.logger.Warn("SMS not sent: console gateway, development only",
			zap.String("to", otp.MaskE164(m.To)),
			zap.String("body", m.Body))
		return otp.Receipt{Gateway: "console"}, nil
	}
	line, err := json.Marshal(OutboxLine{Time: g.clock.Now().UTC(), To: m.To, Body: m.Body, Locale: m.Locale, Ref: m.Ref})
	if err != nil {
		return otp.Receipt{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	f, err := os.OpenFile(g.outbox, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return otp.Receipt{}, fmt.Errorf("open outbox: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return otp.Receipt{}, fmt.Errorf("write outbox: %w", err)
	}
	if err := f.Close(); err != nil {
		return otp.Receipt{}, fmt.Errorf("write outbox: %w", err)
	}
	g.logger.Debug("SMS written to outbox", zap.String("ref", m.Ref))
	return otp.Receipt{Gateway: "console"}, nil
}

var _ otp.Gateway = (*Gateway)(nil)

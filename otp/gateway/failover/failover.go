// Package failover sends through the first of several gateways that takes
// the message, skipping for a while a gateway that keeps failing (a circuit
// breaker).
//
// It never sends two SMS for one message. It moves on to the next gateway
// only when the failed one surely did not accept the message (otp.NotSent:
// it could not be reached, or answered that it did not take it). A gateway
// that refused the number for good (otp.Rejected) ends the attempt, since
// another would refuse it too; so does one whose answer never came after the
// request left (otp.Unknown), since it may have accepted the message and a
// second gateway would then send a second SMS. The user is told the code
// could not be confirmed sent, and may ask again after the resend cooldown.
package failover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// Member is one gateway in the chain.
type Member struct {
	Name    string
	Gateway otp.Gateway
}

// Config configures the circuit breaker.
type Config struct {
	// FailureThreshold consecutive failures open a gateway's circuit.
	// Default: 3.
	FailureThreshold int
	// OpenFor is how long an open circuit skips the gateway before one
	// trial message goes through it again. Default: 30s.
	OpenFor time.Duration
	Clock   otp.Clock
}

// Gateway is the failover chain.
type Gateway struct {
	cfg     Config
	members []*member
	caps    otp.Capabilities
}

type member struct {
	Member
	// caps are the member's own, found once in New.
	caps      otp.Capabilities
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

// New builds a chain of at least one gateway.
func New(cfg Config, members ...Member) (*Gateway, error) {
	if len(members) == 0 {
		return nil, errors.New("failover: expected at least one gateway")
	}
	if cfg.FailureThreshold <= 0 {
		cfg.FailureThreshold = 3
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = otp.SystemClock{}
	}
	g := &Gateway{cfg: cfg}
	for _, m := range members {
		if m.Gateway == nil || m.Name == "" {
			return nil, errors.New("failover: every gateway needs a name and an implementation")
		}
		g.members = append(g.members, &member{Member: m, caps: otp.CapabilitiesOf(m.Name, m.Gateway)})
	}
	if err := g.combineCapabilities(); err != nil {
		return nil, err
	}
	return g, nil
}

// Send implements otp.Gateway.
func (g *Gateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	return g.each(func(mb *member) (otp.Receipt, error, bool) {
		r, err := mb.Gateway.Send(ctx, m)
		return r, err, true
	})
}

// Call implements otp.Caller over the members that can call, skipping the
// others, so that failover never counts "cannot call" against a gateway
// that sends SMS fine.
func (g *Gateway) Call(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	return g.each(func(mb *member) (otp.Receipt, error, bool) {
		if mb.caps.Voice == nil {
			return otp.Receipt{}, nil, false
		}
		r, err := mb.caps.Voice.Call(ctx, m)
		return r, err, true
	})
}

// Capabilities implements otp.CapabilityReporter. The chain calls when any
// member can: a call goes through the first one that can and is up.
// Delivery reports come to the member that sent the message, under its own
// name, so the chain takes the reports of every member that takes them. Its
// health is its members' (see HealthReport).
func (g *Gateway) Capabilities() otp.Capabilities { return g.caps }

// combineCapabilities works out the chain's capabilities from its members'.
func (g *Gateway) combineCapabilities() error {
	g.caps = otp.Capabilities{Health: g}
	for _, mb := range g.members {
		if mb.caps.Voice != nil {
			g.caps.Voice = g
		}
		for name, p := range mb.caps.Receipts {
			if _, dup := g.caps.Receipts[name]; dup {
				return fmt.Errorf("failover: two gateways take delivery reports as %q: give each its own name", name)
			}
			if g.caps.Receipts == nil {
				g.caps.Receipts = map[string]otp.ReceiptParser{}
			}
			g.caps.Receipts[name] = p
		}
	}
	return nil
}

// each tries the members in order with try, which reports whether the
// member took part at all.
func (g *Gateway) each(try func(*member) (otp.Receipt, error, bool)) (otp.Receipt, error) {
	var errs []error
	for _, mb := range g.members {
		if !mb.admit(g.cfg.Clock.Now()) {
			errs = append(errs, &otp.GatewayError{Gateway: mb.Name, Kind: otp.NotSent, Reason: "circuit_open"})
			continue
		}
		r, err, took := try(mb)
		if !took {
			mb.release()
			continue
		}
		if err == nil {
			mb.succeeded()
			if r.Gateway == "" {
				r.Gateway = mb.Name
			}
			return r, nil
		}
		kind := otp.ErrorKindOf(err)
		if kind == otp.Rejected {
			// The number's fault, not the gateway's.
			mb.succeeded()
			return otp.Receipt{}, err
		}
		mb.failed(g.cfg.Clock.Now(), g.cfg.FailureThreshold, g.cfg.OpenFor)
		if kind != otp.NotSent {
			return otp.Receipt{}, err
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return otp.Receipt{}, &otp.GatewayError{Gateway: "failover", Kind: otp.NotSent, Reason: "unsupported",
			Err: errors.New("no gateway in the chain can do this")}
	}
	return otp.Receipt{}, &otp.GatewayError{Gateway: "failover", Kind: otp.NotSent, Reason: lastReason(errs),
		Err: fmt.Errorf("every gateway failed: %w", errors.Join(errs...))}
}

func lastReason(errs []error) string {
	var ge *otp.GatewayError
	if errors.As(errs[len(errs)-1], &ge) {
		return ge.Reason
	}
	return "unreachable"
}

// admit says whether the member may be tried now: its circuit is closed,
// or it is open but due for one trial and no other trial is under way.
func (mb *member) admit(now time.Time) bool {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.openUntil.IsZero() {
		return true
	}
	if now.Before(mb.openUntil) || mb.probing {
		return false
	}
	mb.probing = true
	return true
}

func (mb *member) release() {
	mb.mu.Lock()
	mb.probing = false
	mb.mu.Unlock()
}

func (mb *member) succeeded() {
	mb.mu.Lock()
	mb.failures, mb.openUntil, mb.probing = 0, time.Time{}, false
	mb.mu.Unlock()
}

func (mb *member) failed(now time.Time, threshold int, openFor time.Duration) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	mb.failures++
	if mb.probing || mb.failures >= threshold {
		mb.openUntil = now.Add(openFor)
	}
	mb.probing = false
}

// State reports whether each member's circuit is open at now, by name.
func (g *Gateway) State(now time.Time) map[string]bool {
	out := make(map[string]bool, len(g.members))
	for _, mb := range g.members {
		mb.mu.Lock()
		out[mb.Name] = !mb.openUntil.IsZero() && now.Before(mb.openUntil)
		mb.mu.Unlock()
	}
	return out
}

var (
	_ otp.Gateway            = (*Gateway)(nil)
	_ otp.Caller             = (*Gateway)(nil)
	_ otp.CapabilityReporter = (*Gateway)(nil)
)

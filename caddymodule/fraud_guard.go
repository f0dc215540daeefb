package caddymodule

import (
	"cmp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// FraudOptions set the conversion breaker (issue 15), which stops SMS
// pumping that stays under every fixed limit by spreading over numbers,
// accounts and addresses.
type FraudOptions struct {
	// The fraud guard, on by default: sends and verified codes are counted
	// per prefix (the number without its last 4 digits), per range
	// (without its last 6) and per country other than default_region,
	// over a sliding window; a population with enough sends and too few
	// of them verified gets no more codes for a while, the block doubling
	// on each repeat. {"off": true} turns it off.
	FraudGuard *FraudGuardConfig `json:"fraud_guard,omitempty"`
}

// FraudGuardConfig is the fraud_guard block; an unset field keeps its
// default.
type FraudGuardConfig struct {
	// Off turns the fraud guard off; no other field may be set with it.
	Off bool `json:"off,omitempty"`
	// How far back sends and verified codes count, in whole minutes, 1m
	// to 24h (it slides in six steps). Default: 1h.
	Window caddy.Duration `json:"window,omitempty"`
	// Sends to one prefix, range or country in the window before it is
	// judged, 1 to 100000. Default: 10.
	MinSends int `json:"min_sends,omitempty"`
	// The share of those sends that must have been verified, more than 0
	// and at most 1; below it the population is blocked. Default: 0.2.
	MinConversion float64 `json:"min_conversion,omitempty"`
	// The first block, 1m to 24h; each repeat doubles it. Default: 1h.
	Block caddy.Duration `json:"block,omitempty"`
	// The longest block, from block to 7 days. Default: 24h (or block,
	// when longer).
	MaxBlock caddy.Duration `json:"max_block,omitempty"`
}

// The ranges of the fraud guard's settings.
const (
	maxFraudMinSends = 100000
	maxFraudMaxBlock = 7 * 24 * time.Hour
)

// breakerPolicy is the fraud guard's policy: the defaults, what the
// config sets, and the default region as home. Off is the zero policy.
func (h *Handler) breakerPolicy() otp.BreakerPolicy {
	fg := h.FraudGuard
	if fg != nil && fg.Off {
		return otp.BreakerPolicy{}
	}
	p := otp.DefaultBreakerPolicy()
	p.Home = strings.ToUpper(cmp.Or(strings.TrimSpace(h.DefaultRegion), "JP"))
	if fg == nil {
		return p
	}
	if fg.Window != 0 {
		p.Window = time.Duration(fg.Window)
	}
	p.MinSends = cmp.Or(fg.MinSends, p.MinSends)
	p.MinConversion = cmp.Or(fg.MinConversion, p.MinConversion)
	if fg.Block != 0 {
		p.Block = time.Duration(fg.Block)
	}
	p.MaxBlock = max(p.MaxBlock, p.Block)
	if fg.MaxBlock != 0 {
		p.MaxBlock = time.Duration(fg.MaxBlock)
	}
	return p
}

// validateFraudGuard checks the fraud_guard block as given; its ranges
// live with the others' (intRanges, durationRanges).
func (h *Handler) validateFraudGuard() error {
	fg := h.FraudGuard
	if fg == nil {
		return nil
	}
	if fg.Off {
		if *fg != (FraudGuardConfig{Off: true}) {
			return optionErrorf("fraud_guard", "fraud_guard off: expected no other fraud_guard settings with it")
		}
		return nil
	}
	if w := time.Duration(fg.Window); w%time.Minute != 0 {
		return optionErrorf("fraud_guard.window", "fraud_guard.window %s: expected whole minutes, such as 1h", shortDuration(w))
	}
	if c := fg.MinConversion; c != 0 && !(c > 0 && c <= 1) {
		return optionErrorf("fraud_guard.min_conversion", "fraud_guard.min_conversion %v: expected a share more than 0 and at most 1, such as 0.2", c)
	}
	p := h.breakerPolicy()
	if p.MaxBlock < p.Block {
		return optionErrorf("fraud_guard.max_block", "fraud_guard.max_block %s: expected at least block (%s)", shortDuration(p.MaxBlock), shortDuration(p.Block))
	}
	return nil
}

// fraudIntValues and fraudDurations are the fraud guard's whole-number and
// duration settings, for validateNumbers and validateDurations.
func (h *Handler) fraudIntValues() []intValue {
	if h.FraudGuard == nil {
		return nil
	}
	return []intValue{{"fraud_guard.min_sends", &h.FraudGuard.MinSends}}
}

func (h *Handler) fraudDurations(values map[string]caddy.Duration) {
	if fg := h.FraudGuard; fg != nil {
		values["fraud_guard.window"], values["fraud_guard.block"], values["fraud_guard.max_block"] = fg.Window, fg.Block, fg.MaxBlock
	}
}

// parseFraudGuard parses `fraud_guard off` or
//
//	fraud_guard {
//		window         <duration, whole minutes, 1m to 24h>
//		min_sends      <1-100000>
//		min_conversion <share, more than 0 and at most 1>
//		block          <duration, 1m to 24h>
//		max_block      <duration, block to 7d>
//	}
func parseFraudGuard(d *caddyfile.Dispenser, at map[string]caddyfile.Token) (*FraudGuardConfig, error) {
	fg := new(FraudGuardConfig)
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return nil, d.Errf("fraud_guard %q: expected off, or a block of window, min_sends, min_conversion, block and max_block", d.Val())
		}
		fg.Off = true
	}
	var err error
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		option := "fraud_guard." + sub
		at[option] = d.Token()
		switch sub {
		case "window":
			fg.Window, err = durationArg(d, option)
		case "block":
			fg.Block, err = durationArg(d, option)
		case "max_block":
			fg.MaxBlock, err = durationArg(d, option)
		case "min_sends":
			fg.MinSends, err = intArg(d, option)
		case "min_conversion":
			fg.MinConversion, err = shareArg(d, option)
		default:
			return nil, d.Errf("unknown fraud_guard setting %q: expected window, min_sends, min_conversion, block or max_block", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return fg, nil
}

// shareArg reads a share more than 0 and at most 1 for option.
func shareArg(d *caddyfile.Dispenser, option string) (float64, error) {
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0 && f <= 1) {
		return 0, d.Errf("%s %q: expected a share more than 0 and at most 1, such as 0.2", option, s)
	}
	return f, nil
}

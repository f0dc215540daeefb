package otp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A carrier check (キャリア判定) asks a carrier database what line a number
// is where the numbering plan can't tell: +1 numbers are
// fixed_line_or_mobile to the metadata, and a ported number keeps its
// prefix but not its carrier. The answer is kept in the store, sealed, for
// a long time (DefaultCarrierTTL), so each number costs one paid lookup a
// month at most.

// CarrierLookup asks a carrier database (Twilio Lookup, an operator's own
// service) about one number.
type CarrierLookup interface {
	// LookUpCarrier returns the line type of e164 in the policy's names
	// (see CarrierType). An error is a lookup that failed: no answer.
	LookUpCarrier(ctx context.Context, e164 string) (CarrierAnswer, error)
	// CarrierScope names the database for the cache: two lookups with
	// the same scope give the same answers.
	CarrierScope() string
}

// CarrierAnswer is what a carrier database said of a number.
type CarrierAnswer struct {
	// Type is one of the policy's type names (PhoneTypeNames), or
	// "unknown" when the database did not know, or "invalid" when it
	// said the number does not exist.
	Type string
	// Carrier is the network's name, when the database gave one. It is
	// not kept in the cache.
	Carrier string
}

// ErrCarrierLookup wraps every failure of a carrier lookup: a timeout, a
// status other than success, an answer that can't be read.
var ErrCarrierLookup = errors.New("carrier lookup failed")

// carrierTypes maps the line types of carrier databases onto the policy's
// number types: Twilio Lookup v2's line_type_intelligence.type names, and
// the policy's own names, which an operator's service may answer with.
var carrierTypes = map[string]string{
	"mobile": "mobile", "landline": "fixed_line", "fixedVoip": "voip", "nonFixedVoip": "voip",
	"personal": "personal", "tollFree": "toll_free", "premium": "premium_rate", "sharedCost": "shared_cost",
	"uan": "uan", "voicemail": "voicemail", "pager": "pager", "unknown": "unknown",
	"fixed_line": "fixed_line", "voip": "voip", "toll_free": "toll_free", "premium_rate": "premium_rate",
	"shared_cost": "shared_cost", "invalid": "invalid",
}

// CarrierType maps a carrier database's line type onto the policy's
// number type names; ok is false for a name it does not know.
func CarrierType(name string) (string, bool) {
	t, ok := carrierTypes[name]
	return t, ok
}

// neverByCarrier are line types refused whatever allow_types says: they
// can't receive an SMS, or they cost the sender (SMS pumping's targets).
var neverByCarrier = map[string]bool{"premium_rate": true, "toll_free": true, "shared_cost": true, "invalid": true}

// Carrier check defaults and bounds.
const (
	DefaultCarrierTTL = 30 * 24 * time.Hour
	MinCarrierTTL     = time.Hour
	MaxCarrierTTL     = 90 * 24 * time.Hour
)

// CarrierCheckConfig configures a CarrierCheck.
type CarrierCheckConfig struct {
	Lookup CarrierLookup
	// Store keeps the answers sealed under keyed hashes of the numbers.
	Store LookupCache
	Keys  *Keys
	Clock Clock
	// TTL is how long an answer is kept. Default: DefaultCarrierTTL.
	TTL time.Duration
	// Always looks every number up; by default only those the metadata
	// can't classify (fixed_line_or_mobile).
	Always bool
	// Limiter counts the lookups that reach the carrier database against
	// Limits (carrier_limits.go); nil counts none.
	Limiter Limiter
	Limits  CarrierLimits
}

// CarrierCheck decides, before a code goes to a number, whether its
// carrier's answer lets the policy accept it.
type CarrierCheck struct {
	cfg   CarrierCheckConfig
	scope string
}

// NewCarrierCheck checks cfg and returns the check.
func NewCarrierCheck(cfg CarrierCheckConfig) (*CarrierCheck, error) {
	if cfg.Lookup == nil || cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("carrier check: a lookup, a store and keys are required")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultCarrierTTL
	}
	if cfg.TTL < MinCarrierTTL || cfg.TTL > MaxCarrierTTL {
		return nil, fmt.Errorf("carrier check: cache %s: expected a duration from %s to %s", cfg.TTL, MinCarrierTTL, MaxCarrierTTL)
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("carrier check: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	// The phone sources' scopes are hex digests: this one never equals one.
	return &CarrierCheck{cfg: cfg, scope: "carrier\x00" + cfg.Lookup.CarrierScope()}, nil
}

// CarrierVerdict is what a check found out.
type CarrierVerdict struct {
	// Checked is false when the number needed no lookup.
	Checked bool
	// Cached is set when the answer came from the store.
	Cached bool
	// Type is the carrier's answer in policy names.
	Type    string
	Carrier string
}

// Needs reports whether ph is looked up: a number the operator allow-listed
// never is; otherwise every number with Always, else those the metadata
// calls fixed_line_or_mobile.
func (c *CarrierCheck) Needs(ph Phone) bool {
	return !ph.AllowListed && (c.cfg.Always || ph.Type == "fixed_line_or_mobile")
}

// Check looks ph up (from the store when it can) and applies policy to
// the carrier's answer. It returns a *PhoneRefusal with Reason "carrier"
// when the answer is refused, an error wrapping ErrCarrierLookup when the
// lookup failed or was refused by its caps (CarrierLimits), and one
// wrapping ErrStoreUnavailable when the store could not be read or
// written (closed, as everywhere).
func (c *CarrierCheck) Check(ctx context.Context, policy *PhonePolicy, ph Phone, who CarrierAsker) (CarrierVerdict, error) {
	if !c.Needs(ph) {
		return CarrierVerdict{}, nil
	}
	v, err := c.answer(ctx, ph.E164, who)
	if err != nil {
		return v, err
	}
	if !policy.acceptsCarrierType(v.Type) {
		return v, &PhoneRefusal{Reason: "carrier", Type: v.Type, Masked: ph.Masked}
	}
	return v, nil
}

// acceptsCarrierType applies the policy's allowed types to a carrier's
// answer. unknown keeps the metadata's verdict, which already passed.
func (p *PhonePolicy) acceptsCarrierType(t string) bool {
	switch {
	case t == "unknown":
		return true
	case neverByCarrier[t]:
		return false
	case t == "mobile":
		return p.types["mobile"] || p.types["fixed_line_or_mobile"]
	}
	return p.types[t]
}

// cachedCarrier is an answer as it is sealed into the store.
type cachedCarrier struct {
	Type string `json:"t"`
}

func (c *CarrierCheck) answer(ctx context.Context, e164 string, who CarrierAsker) (CarrierVerdict, error) {
	key := c.cfg.Keys.LookupKey(c.scope, e164)
	now := c.cfg.Clock.Now()
	sealed, ok, err := c.cfg.Store.CachedLookup(ctx, key, now)
	if err != nil {
		return CarrierVerdict{}, fmt.Errorf("%w: read cached carrier lookup: %w", ErrStoreUnavailable, err)
	}
	if ok {
		var cc cachedCarrier
		if plain, err := c.cfg.Keys.OpenLookup(key, sealed); err == nil && json.Unmarshal(plain, &cc) == nil {
			if _, known := carrierTypes[cc.Type]; known {
				return CarrierVerdict{Checked: true, Cached: true, Type: cc.Type}, nil
			}
		}
		// Sealed under a rotated key, or altered: ask again.
	}
	if err := c.countLookup(ctx, who, now); err != nil {
		return CarrierVerdict{}, err
	}
	a, err := c.cfg.Lookup.LookUpCarrier(ctx, e164)
	if err != nil {
		if !errors.Is(err, ErrCarrierLookup) {
			err = fmt.Errorf("%w: %w", ErrCarrierLookup, err)
		}
		return CarrierVerdict{}, err
	}
	if _, known := carrierTypes[a.Type]; !known {
		return CarrierVerdict{}, fmt.Errorf("%w: line type %q is none the policy knows", ErrCarrierLookup, a.Type)
	}
	plain, _ := json.Marshal(cachedCarrier{Type: a.Type})
	if sealed, err = c.cfg.Keys.SealLookup(key, plain); err == nil {
		err = c.cfg.Store.CacheLookup(ctx, key, sealed, now, c.cfg.TTL)
	}
	if err != nil {
		return CarrierVerdict{}, fmt.Errorf("%w: cache carrier lookup: %w", ErrStoreUnavailable, err)
	}
	return CarrierVerdict{Checked: true, Type: a.Type, Carrier: a.Carrier}, nil
}

package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
)

// Phone sources: the application's own data, asked after the phone
// placeholder and phone_file and before enrolment (see phoneFor).
//
// The sources are the authority for the identities they know. A number a
// source gives is the operator's, like one from phone_file: it goes
// through the phone policy like any other, and the user can't enrol
// another over it. A source that fails (down, slow, an answer that is not
// one number) fails the request closed with the 503 page; it never falls
// through to a later source or to enrolment, or whoever can make the
// database slow would choose where codes go. Only when every source says
// it knows no number does enrolment (with enroll) take over. Answers are
// cached in the store (found: 5 minutes, not found: 1 minute by default),
// sealed and under a keyed hash of the identity, so instances sharing a
// Redis share them; failures are never cached.

// phoneSources is the handler's provisioned chain and its cache.
type phoneSources struct {
	cache *source.Cache
	// list is the sources in order, with their module names, for the
	// operator's status.
	list []typedSource
}

type typedSource struct {
	typ string
	src source.PhoneSource
}

// provisionPhoneSources loads the phone_source modules, chains them in
// order and puts the store's cache in front. It runs once the store and
// keys are there.
func (h *Handler) provisionPhoneSources(p *provisioning) error {
	if len(h.PhoneSourcesRaw) == 0 {
		return nil
	}
	mods, err := p.ctx.LoadModule(h, "PhoneSourcesRaw")
	if err != nil {
		return fmt.Errorf("phone_source: %w", err)
	}
	ps := &phoneSources{}
	var srcs []source.PhoneSource
	for _, mod := range mods.([]any) {
		m, ok := mod.(phoneSourceModule)
		if !ok {
			return fmt.Errorf("phone_source module %T is not a phone source: expected a module of the sms_stepup.phone_sources namespace", mod)
		}
		srcs = append(srcs, m.phoneSource())
		ps.list = append(ps.list, typedSource{typ: moduleName(mod), src: m.phoneSource()})
	}
	chain, err := source.NewChain(srcs...)
	if err != nil {
		return onOption("phone_sources", fmt.Errorf("%w (each phone_source takes a name option)", err))
	}
	store, err := lookupCacheOf(h.store)
	if err != nil {
		return err
	}
	cfg := source.CacheConfig{Store: store, Keys: h.keys, Clock: h.clock}
	if c := h.PhoneSourceCache; c != nil {
		cfg.FoundTTL, cfg.NotFoundTTL = time.Duration(c.Found), time.Duration(c.NotFound)
	}
	if ps.cache, err = source.NewCache(chain, cfg); err != nil {
		return onOption("phone_source_cache", err)
	}
	h.sources = ps
	return nil
}

// lookupCacheOf is where the store module keeps phone lookups.
func lookupCacheOf(s otp.Store) (otp.LookupCache, error) {
	inner := s
	switch m := s.(type) {
	case *MemoryStore:
		inner = m.Store
	case *RedisStore:
		inner = m.Store
	}
	if lc, ok := inner.(otp.LookupCache); ok {
		return lc, nil
	}
	return nil, fmt.Errorf("phone_source: the store %T cannot cache phone lookups; expected the memory or redis store", s)
}

// numberFromSource is a number a phone source gave that the policy
// refused: the refusal, naming the source for the audit trail.
type numberFromSource struct {
	source string
	err    error
}

func (e *numberFromSource) Error() string {
	return "the number from phone source " + strconv.Quote(e.source) + ": " + e.err.Error()
}

func (e *numberFromSource) Unwrap() error { return e.err }

// phoneSourceOf names the phone source that err concerns, or "".
func phoneSourceOf(err error) string {
	var nf *numberFromSource
	if errors.As(err, &nf) {
		return nf.source
	}
	var se *source.Error
	if errors.As(err, &se) {
		return se.Source
	}
	return ""
}

// sourcePhone asks the sources (through the cache) for identity's number
// and checks it against the policy. errNoPhone: no source knows one.
// Any other error but a policy refusal is a failure to fail closed on.
func (h *Handler) sourcePhone(ctx context.Context, identity string) (otp.Phone, error) {
	a, err := h.sources.cache.Find(ctx, identity)
	if err != nil {
		h.audit(zapcore.WarnLevel, "phone source lookup failed", "phone_source_lookup", zap.String("identity", identity),
			zap.String("source", cmp.Or(phoneSourceOf(err), "none")), zap.String("result", "error"), zap.Error(err))
		return otp.Phone{}, err
	}
	result, level := "not_found", zapcore.InfoLevel
	switch {
	case a.Cached:
		result, level = "cached", zapcore.DebugLevel
	case a.Found:
		result = "found"
	}
	fields := []zap.Field{zap.String("identity", identity), zap.String("source", cmp.Or(a.Source, "none")), zap.String("result", result)}
	if !a.Found {
		h.audit(level, "no phone source knows the identity", "phone_source_lookup", fields...)
		return otp.Phone{}, errNoPhone
	}
	phone, err := h.checkPhone(a.Raw)
	if err != nil {
		h.audit(level, "phone number found in a phone source", "phone_source_lookup", fields...)
		return otp.Phone{}, &numberFromSource{source: a.Source, err: err}
	}
	h.audit(level, "phone number found in a phone source", "phone_source_lookup", append(fields, zap.String("phone", phone.Masked))...)
	return phone, nil
}

// sourceGives reports whether a phone source gives identity a number (one
// the policy refuses too), or can't say: either way the number is not the
// user's to replace by enrolling.
func (h *Handler) sourceGives(identity string) bool {
	if h.sources == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := h.sources.cache.Find(ctx, identity)
	return err != nil || a.Found
}

// unavailableEvent is how a request that fails closed on err is logged: a
// phone source that can't answer is named as such, anything else is the
// store.
func unavailableEvent(err error) (msg, event string, fields []zap.Field) {
	var se *source.Error
	switch {
	case errors.As(err, &se):
		return "phone source unavailable: failing closed", "phone_source_unavailable", []zap.Field{zap.String("source", se.Source)}
	case errors.Is(err, source.ErrInvalidIdentity):
		return "identity cannot be looked up in the phone sources: failing closed", "phone_source_unavailable", nil
	}
	return "store unavailable: failing closed", "store_unavailable", nil
}

// PhoneSourceHealth is how one phone source answered the operator's
// health check.
type PhoneSourceHealth struct {
	Source string `json:"source"`
	Type   string `json:"type"`
	// Status is "ok" (the source answered, whatever it answered) or
	// "down".
	Status string `json:"status"`
	// Error says why a source is down; it names the source, never a
	// number.
	Error string `json:"error,omitempty"`
}

// healthIdentity is the identity the health check looks up: what the
// source answers about it does not matter, only that it answers.
const healthIdentity = "sms-stepup-health-check"

// health asks each source, past the cache, about healthIdentity.
func (ps *phoneSources) health(ctx context.Context) []PhoneSourceHealth {
	out := make([]PhoneSourceHealth, 0, len(ps.list))
	for _, s := range ps.list {
		st := PhoneSourceHealth{Source: s.src.Name(), Type: s.typ, Status: "ok"}
		if _, _, err := s.src.Lookup(ctx, healthIdentity); err != nil {
			st.Status, st.Error = "down", err.Error()
		}
		out = append(out, st)
	}
	return out
}

// phoneSourcesShared is what the handlers of one realm must agree on of
// their phone sources (scope.go): the modules' configs, in order, and the
// cache's lifetimes. It holds secrets (a DSN, a password), so a difference
// is named, never shown.
func phoneSourcesShared(h *Handler) string {
	var b strings.Builder
	for _, raw := range h.PhoneSourcesRaw {
		b.WriteString(canonicalJSON(raw))
		b.WriteByte('\n')
	}
	if c := h.PhoneSourceCache; c != nil {
		fmt.Fprintf(&b, "cache %s %s", time.Duration(c.Found), time.Duration(c.NotFound))
	}
	return b.String()
}

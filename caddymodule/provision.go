package caddymodule

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// provisioning is what Provision's steps hand on to each other.
type provisioning struct {
	ctx    caddy.Context
	config string     // the fingerprint of the config as given
	cfg    otp.Config // the service's rules, filled in step by step
}

// Provision sets up the handler, one named step after another. The
// handler has no Cleanup of its own: the store and gateway are guest
// modules, which Caddy cleans up with the config, even when Provision
// fails half way; the admin API's entry and the budget gauge drop the
// handler when the config's context ends.
func (h *Handler) Provision(ctx caddy.Context) error {
	p := &provisioning{ctx: ctx, config: ConfigFingerprint(h)} // of the config as given, before defaults are filled in
	defer registerLive(ctx, h, p.config)                       // for the admin API (live.go): only once Provision succeeded, until the config unloads
	h.logger = ctx.Logger()
	h.devCookieOnce = new(sync.Once)
	h.revocationWarned = new(atomic.Int64)
	if h.clock == nil {
		h.clock = otp.SystemClock{}
	}
	// prefix: whether the step's name goes before its errors; the steps
	// whose errors already name their option or file go without.
	for _, step := range []struct {
		name   string
		prefix bool
		run    func(*provisioning) error
	}{
		{"metrics", true, func(*provisioning) error { return initMetrics(ctx.GetMetricsRegistry()) }},
		{"metrics", true, func(*provisioning) error { return initFraudMetrics(ctx.GetMetricsRegistry()) }},
		{"events", true, func(*provisioning) error { return h.loadEvents(ctx) }},
		{"config", false, func(*provisioning) error { return h.Validate() }},
		{"request inputs", false, h.provisionInputs},
		{"forward_auth route", false, h.checkForwardAuthRoute},
		{"messages", false, h.provisionMessages},
		{"load protect matchers", true, h.provisionProtect},
		{"load routes", true, h.provisionRoutes},
		{"pages", false, h.provisionPages},
		{"phone policy", false, h.provisionPhonePolicy},
		{"keys", false, h.provisionKeys},
		{"scope", false, func(p *provisioning) error { return h.joinLoad(p.ctx, p.config) }},
		{"load store", true, h.provisionStore},
		{"replay", true, h.provisionReplay},
		{"phone sources", false, h.provisionPhoneSources},
		{"carrier lookup", false, h.provisionLookup},
		{"gateway", false, h.provisionGateway},
		{"service", false, h.provisionService},
		{"captcha", false, h.provisionCaptcha},
	} {
		if err := step.run(p); err != nil {
			if step.prefix {
				return fmt.Errorf("%s: %w", step.name, err)
			}
			return err
		}
	}
	return nil
}

// provisionInputs works out the path prefix, the scope and how each
// request's identity, session and trust are read.
func (h *Handler) provisionInputs(p *provisioning) error {
	h.PathPrefix = strings.TrimRight(cmp.Or(h.PathPrefix, DefaultPathPrefix), "/")
	h.provisionScope(p.ctx)
	h.warnClientIPSource(p.ctx)
	h.warnIfWrapped(p.ctx)
	h.identityIn, h.sessionIn = inputOf(h.Identity), inputOf(h.Session)
	if err := h.provisionTrust(); err != nil {
		return err
	}
	h.provisionSession()
	upstream, err := parseUpstreamHeaders(h.UpstreamHeaders)
	h.upstream = upstream
	return err
}

// provisionMessages sets up the SMS texts, checked to fit max_segments,
// and the token lifetimes.
func (h *Handler) provisionMessages(p *provisioning) error {
	p.cfg = h.otpConfig()
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	msgs, err := otp.NewMessages(otp.MessagesConfig{Templates: h.Messages, WebOTPHost: h.WebOTPHost})
	if err != nil {
		return err
	}
	if p.cfg.ServiceName, err = h.fitServiceName(msgs, p.cfg, cmp.Or(h.MaxSegments, 1)); err != nil {
		return err
	}
	p.cfg.Messages = msgs
	if h.TokenTTL == 0 {
		h.TokenTTL = caddy.Duration(DefaultTokenTTL)
	}
	// Every route checks freshness against its own max_age, not only the
	// cookie's expiry: a realm's cookie may come from a handler whose
	// tokens live longer (SECURITY.md rule 27).
	h.maxAge = time.Duration(cmp.Or(h.MaxAge, h.TokenTTL))
	return nil
}

// provisionProtect loads the matchers of the requests that need a step-up.
func (h *Handler) provisionProtect(p *provisioning) error {
	if h.ProtectRaw == nil {
		return nil
	}
	mods, err := p.ctx.LoadModule(h, "ProtectRaw")
	if err != nil {
		return err
	}
	if err := h.protect.FromInterface(mods); err != nil {
		return err
	}
	h.protectPaths = compilePaths(h.protect)
	return nil
}

// provisionPages sets up the brand and the page templates.
func (h *Handler) provisionPages(*provisioning) error {
	if h.Brand != nil {
		h.brand = pages.Brand{Name: h.Brand.Name, LogoURL: h.Brand.LogoURL, Color: h.Brand.Color}
		if err := pages.CheckBrand(h.brand); err != nil {
			return err
		}
	}
	var err error
	h.pages, err = pages.NewSet(h.Templates)
	h.frames = newPageFrames()
	return err
}

// provisionPhonePolicy reads the number lists and the phone file.
func (h *Handler) provisionPhonePolicy(*provisioning) error {
	pcfg := otp.PhonePolicyConfig{DefaultRegion: h.DefaultRegion, AllowCountries: h.AllowCountries,
		AllowTypes: h.AllowTypes, MobilePrefixes: h.MobilePrefixes}
	var err error
	if h.DenyNumbers != "" {
		if pcfg.DenyNumbers, err = otp.LoadNumberList(h.DenyNumbers); err != nil {
			return fmt.Errorf("deny_numbers: %w", err)
		}
	}
	if h.AllowNumbers != "" {
		if pcfg.AllowNumbers, err = otp.LoadNumberList(h.AllowNumbers); err != nil {
			return fmt.Errorf("allow_numbers: %w", err)
		}
	}
	if h.policy, err = otp.NewPhonePolicy(pcfg); err != nil {
		return err
	}
	h.phones = newPhoneMemo(h.policy, phoneMemoSize)
	return h.provisionPhoneFile()
}

// provisionKeys derives the keys and sets up the tokens they sign.
func (h *Handler) provisionKeys(p *provisioning) error {
	root, err := h.signingKey(p.ctx)
	if err != nil {
		return err
	}
	if h.keys, err = otp.DeriveKeys(root); err != nil {
		return fmt.Errorf("signing_key: %w", err)
	}
	tokenKeys := []*otp.Keys{h.keys}
	for i, raw := range h.PreviousKeys {
		key, err := caddy.NewReplacer().ReplaceOrErr(raw, true, true)
		if err != nil {
			return fmt.Errorf("previous_keys[%d]: %w", i, err)
		}
		k, err := otp.DeriveKeys([]byte(key))
		if err != nil {
			return fmt.Errorf("previous_keys[%d]: %w", i, err)
		}
		h.retired = append(h.retired, k)
		tokenKeys = append(tokenKeys, k)
	}
	edKeys, err := loadEdKeys(h.SigningKeyFile, h.PreviousKeyFiles)
	if err != nil {
		return err
	}
	h.tokens, err = otp.NewTokens(otp.TokenConfig{
		Issuer:   tokenIssuer,
		Audience: h.audience,
		TTL:      time.Duration(h.TokenTTL),
		Keys:     tokenKeys,
		EdKeys:   edKeys,
		Clock:    h.clock,
	})
	return err
}

// provisionStore loads the store, memory unless configured.
func (h *Handler) provisionStore(p *provisioning) error {
	if h.StoreRaw == nil {
		h.StoreRaw = json.RawMessage(`{"type":"memory"}`)
	}
	mod, err := p.ctx.LoadModule(h, "StoreRaw")
	if err != nil {
		return err
	}
	store, ok := mod.(otp.Store)
	if !ok {
		return fmt.Errorf("store module %T is not an otp.Store", mod)
	}
	h.store = store
	return nil
}

// provisionGateway loads the gateway and where it reports delivery.
func (h *Handler) provisionGateway(p *provisioning) error {
	if err := h.loadGateway(p.ctx); err != nil {
		return err
	}
	if h.ReceiptsURL != "" {
		p.cfg.ReceiptBase = strings.TrimSuffix(h.ReceiptsURL, "/") + h.PathPrefix + "/receipt"
	}
	return nil
}

// provisionService starts the step-up service and the budget gauge.
func (h *Handler) provisionService(p *provisioning) error {
	var err error
	p.cfg.Breaker.OnBlock = h.fraudBlockSet
	if h.service, err = h.newService(p.cfg, h.store); err != nil {
		return err
	}
	return watchBudget(p.ctx, h)
}

// otpConfig turns the handler's fields into verification rules, with
// defaults for what is unset.
func (h *Handler) otpConfig() otp.Config {
	cfg := otp.DefaultConfig()
	if h.CodeLength != 0 {
		cfg.CodeLength = h.CodeLength
	}
	if h.CodeTTL != 0 {
		cfg.CodeTTL = time.Duration(h.CodeTTL)
	}
	if h.MaxAttempts != 0 {
		cfg.MaxAttempts = h.MaxAttempts
	}
	cfg.ServiceName = cmp.Or(h.serviceLabel, h.ServiceName, cfg.ServiceName)
	if h.MaxCalls != 0 {
		cfg.MaxCalls = h.MaxCalls
	}
	if h.ResendCooldown != 0 {
		cfg.CooldownBase = time.Duration(h.ResendCooldown)
	}
	if h.FailureBudget != 0 {
		cfg.Failures.Budget = h.FailureBudget
	}
	cfg.Limits = h.Limits.sendLimits()
	cfg.RevocationRefresh = time.Duration(h.RevocationRefresh)
	cfg.History = h.historyPolicy()
	h.applyBackoff(&cfg)
	cfg.Breaker = h.breakerPolicy()
	return cfg
}

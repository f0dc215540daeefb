package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/pow"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// A CAPTCHA before a send (issue 15). When captcha is configured and
// captcha_when says the send needs one (risk.go), the send page carries a
// challenge the server signed for this identity and session: its script
// solves the proof of work and posts the nonce with the form, and a page
// without JavaScript shows the challenge's image instead, whose text the
// user types. The send checks the answer and claims the challenge in the
// store first, so each challenge is answered once (SECURITY.md rule 34),
// right or wrong. Without a valid answer nothing is sent and the page (or
// the JSON API) gets a fresh challenge.

// captchaAnswer is what a send carries for the CAPTCHA.
type captchaAnswer struct {
	// Challenge is the token the page or the API gave.
	Challenge string `json:"challenge"`
	// Nonce answers the proof of work; Text the image; Token is the
	// response a provider's widget gave.
	Nonce string `json:"nonce"`
	Text  string `json:"text"`
	Token string `json:"token"`
}

// provisionCaptcha sets up what the CAPTCHA needs from the store.
func (h *Handler) provisionCaptcha(*provisioning) error {
	if h.Captcha == nil {
		return nil
	}
	lc, err := lookupCacheOf(h.store)
	if err != nil {
		return onOption("captcha", errors.New("captcha: the store cannot remember devices; expected the memory or redis store"))
	}
	once, ok := innerStore(h.store).(otp.OnceStore)
	if !ok {
		return onOption("captcha", errors.New("captcha: the store cannot make answers single-use; expected the memory or redis store"))
	}
	h.familiar = otp.Familiarity{Cache: lc, Keys: h.keys}
	h.once = once
	if _, ok := h.provider(); ok {
		secret, err := caddy.NewReplacer().ReplaceOrErr(h.Captcha.Secret, true, true)
		if err != nil {
			return onOption("captcha", fmt.Errorf("captcha secret: %w: is the variable set?", err))
		}
		h.captchaSecret = secret
	}
	return nil
}

// innerStore is the otp store inside the store module.
func innerStore(s otp.Store) otp.Store {
	switch m := s.(type) {
	case *MemoryStore:
		return m.Store
	case *RedisStore:
		return m.Store
	}
	return s
}

// captchaDifficulty says whether a send with risk r needs a CAPTCHA, and
// the proof of work's difficulty: the configured bits for one signal (or
// none, with always), 2 more for each further signal, at most 8 more.
func (h *Handler) captchaDifficulty(r risk) (int, bool) {
	if h.Captcha == nil {
		return 0, false
	}
	n := r.count()
	switch h.captchaWhen() {
	case "never":
		return 0, false
	case "risky":
		if n == 0 {
			return 0, false
		}
	}
	if _, ok := h.provider(); ok {
		return 0, true
	}
	base := cmp.Or(h.Captcha.Difficulty, DefaultPowDifficulty)
	return base + min(2*max(n-1, 0), 8), true
}

func (h *Handler) captchaBinding(v *visit) otp.CaptchaBinding {
	return otp.CaptchaBinding{Identity: v.identity, SessionHash: v.sessionHash, Scope: h.audience}
}

// newCaptcha issues a challenge of difficulty for v, as pages and the API
// show it.
func (h *Handler) newCaptcha(v *visit, difficulty int) *pages.Captcha {
	token, _, err := h.keys.IssueCaptcha(difficulty, h.captchaBinding(v), h.clock.Now())
	if err != nil {
		return nil
	}
	if p, ok := h.provider(); ok {
		return &pages.Captcha{Kind: h.Captcha.Type, Challenge: token, SiteKey: h.Captcha.SiteKey, Script: p.script, Class: p.class}
	}
	return &pages.Captcha{
		Kind:       "pow",
		Challenge:  token,
		Difficulty: difficulty,
		ImageURL:   h.PathPrefix + "/captcha.png?c=" + urlQueryEscape(token),
	}
}

// pageCaptcha is the challenge the send and code pages carry, when a send
// from them would need one now. A store it can't read leaves it out: the
// send then fails closed on its own.
func (h *Handler) pageCaptcha(v *visit) *pages.Captcha {
	if h.Captcha == nil || h.captchaWhen() == "never" {
		return nil
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	h.knowPhone(ctx, v)
	r, err := h.assessRisk(ctx, v)
	if err != nil {
		return nil
	}
	d, needed := h.captchaDifficulty(r)
	if !needed {
		return nil
	}
	return h.newCaptcha(v, d)
}

// captchaGate judges the risk of v's send and, when it calls for a
// CAPTCHA, checks the answer v carries. It returns the risk, and an
// outcome with refused true when the send must not go ahead.
func (h *Handler) captchaGate(ctx context.Context, v *visit, logFields []zap.Field) (risk, outcome, bool) {
	if h.Captcha == nil {
		return risk{}, outcome{}, false
	}
	r, err := h.assessRisk(ctx, v)
	if err != nil {
		return r, outcome{unavailable: err}, true
	}
	d, needed := h.captchaDifficulty(r)
	if !needed {
		return r, outcome{}, false
	}
	reason, err := h.checkCaptcha(ctx, v, d)
	if err != nil {
		return r, outcome{unavailable: err}, true
	}
	if reason == "" {
		return r, outcome{}, false
	}
	o := outcome{}
	o.audit(zapcore.WarnLevel, "send refused: CAPTCHA needed", "captcha_refused", append(logFields, r.field(),
		zap.String("reason", reason), zap.Int("difficulty", d))...)
	data := v.msg(reason)
	data.Captcha = h.newCaptcha(v, d)
	status := http.StatusForbidden
	if reason == "captcha_unavailable" {
		status = http.StatusServiceUnavailable
	}
	return r, h.withChallenge(v, o, status, data, data), true
}

// checkCaptcha checks v's answer against a challenge of at least
// difficulty: "" when it passes, else the catalog key saying why not. The
// challenge is claimed before its answer and difficulty are judged, so a
// wrong answer uses it up as a right one does.
func (h *Handler) checkCaptcha(ctx context.Context, v *visit, difficulty int) (string, error) {
	a := v.req.Captcha
	if a.Challenge == "" {
		return "captcha_required", nil
	}
	now := h.clock.Now()
	c, err := h.keys.OpenCaptcha(a.Challenge, h.captchaBinding(v), now)
	switch {
	case errors.Is(err, otp.ErrCaptchaExpired):
		return "captcha_expired", nil
	case err != nil:
		return "captcha_wrong", nil
	}
	claimed, err := h.once.ClaimOnce(ctx, "captcha:"+c.ID, now, c.Expires.Sub(now)+time.Minute)
	switch {
	case err != nil:
		return "", err
	case !claimed:
		return "captcha_used", nil
	case c.Difficulty < difficulty:
		// Made for a lower risk than the send has now.
		return "captcha_required", nil
	}
	if p, ok := h.provider(); ok {
		passed, err := h.verifyProvider(ctx, p, a.Token, clientIP(v.r), v.r.Host)
		switch {
		case err != nil:
			h.logger.Error("CAPTCHA provider could not be asked: send refused", zap.String("provider", h.Captcha.Type), zap.Error(err))
			return "captcha_unavailable", nil
		case passed:
			return "", nil
		}
		return "captcha_wrong", nil
	}
	if pow.Check(a.Challenge, a.Nonce, c.Difficulty) {
		return "", nil
	}
	if a.Text != "" && otp.CaptchaTextMatches(h.keys.CaptchaText(c.ID), a.Text) {
		return "", nil
	}
	return "captcha_wrong", nil
}

// rememberSend and rememberVerified keep what the risk of later sends is
// judged by. A failure is logged, not the user's: the send or the
// verification happened, and a lost record only makes a later send look
// riskier.
func (h *Handler) rememberSend(ctx context.Context, v *visit) {
	if h.Captcha == nil {
		return
	}
	if err := h.familiar.Sent(ctx, v.identity, h.clock.Now()); err != nil {
		h.logger.Warn("could not remember a send for the CAPTCHA's risk", zap.String("identity", v.identity), zap.Error(err))
	}
}

func (h *Handler) rememberVerified(ctx context.Context, v *visit) {
	if h.Captcha == nil {
		return
	}
	if err := h.familiar.Verified(ctx, v.identity, v.device, clientIP(v.r), h.clock.Now()); err != nil {
		h.logger.Warn("could not remember a verified device for the CAPTCHA's risk", zap.String("identity", v.identity), zap.Error(err))
	}
}

// apiCaptcha is the CAPTCHA of a send or code page as JSON: the one an
// outcome carries, else a fresh one when a send would need it now.
func (h *Handler) apiCaptcha(v *visit, page string, data pages.Data) map[string]any {
	c := data.Captcha
	if c == nil && v.identity != "" && (page == pages.Send || page == pages.Code) {
		c = h.pageCaptcha(v)
	}
	if c == nil {
		return nil
	}
	if c.SiteKey != "" {
		return map[string]any{"kind": c.Kind, "challenge": c.Challenge, "provider": c.Kind, "site_key": c.SiteKey}
	}
	return map[string]any{"kind": c.Kind, "challenge": c.Challenge, "difficulty": c.Difficulty, "image_url": c.ImageURL}
}

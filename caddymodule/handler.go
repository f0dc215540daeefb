// Package caddymodule is the Caddy glue of caddy-sms-stepup: the
// http.handlers.sms_stepup module, its Caddyfile directive, and the store and
// gateway guest modules. The rules live in package otp; this package turns
// requests into calls to it.
package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	first := removeClientValues(r)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	readings, ok := h.rawPathReadings(r) // rawpath.go: what upstreams may make of the raw path
	if !ok {
		blankPlaceholders(repl, first)
		return h.refuseOddPath(w, r)
	}
	if underPrefix(r.URL.Path, h.PathPrefix) {
		blankPlaceholders(repl, first)
		return h.serveOwn(w, r)
	}
	need, err := h.requirementOf(r, readings) // routes.go: protect and the routes, strictest max_age
	if err != nil || !need.need {
		blankPlaceholders(repl, first)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		if h.appTriggeredMatch(r) {
			h.tellAppOfStepUp(r, repl)
			return h.serveAppTriggered(w, r, next, h.maxAge) // app_triggered.go
		}
		return next.ServeHTTP(w, r)
	}
	identity, session, err := h.signedIn(w, r, repl)
	if identity == "" {
		blankPlaceholders(repl, first)
		return err // refused
	}
	sessionHash := h.keys.SessionHash(session)
	if token := cookieValue(r, h.cookieName(r, tokenCookie)); token != "" {
		v, err := h.checkStepUp(r, token, identity, sessionHash, need.maxAge)
		if err == nil {
			if done, err := h.replayResubmission(w, r, identity, sessionHash); done {
				blankPlaceholders(repl, first)
				return err // the resume page's post of a kept form that can't be sent
			}
			// The hot path: a valid step-up. With upstream_headers the
			// upstream learns who stepped up and when from request headers
			// the handler sets itself (after removing any the client
			// sent), so no header_up is needed: any header_up makes
			// reverse_proxy copy every request header.
			h.setPlaceholders(repl, &v, token)
			h.setUpstreamHeaders(r.Header, &v, token)
			if h.appTriggeredMatch(r) {
				return h.serveAppTriggered(w, r, next, need.maxAge)
			}
			return next.ServeHTTP(w, r)
		}
		if errors.Is(err, errTokenRevoked) {
			h.setCookie(w, r, tokenCookie, "", -1, http.SameSiteLaxMode)
			h.audit(zapcore.InfoLevel, "step-up cookie refused: revoked by an operator", "token_revoked",
				zap.String("identity", identity), zap.String("reason", "not_before"), zap.String("client_ip", clientIP(r)))
		} else {
			h.logger.Debug("step-up cookie not accepted", zap.String("identity", identity), zap.String("reason", err.Error()))
		}
	}
	blankPlaceholders(repl, first)
	return h.challenge(w, r, repl, identity, need.maxAge)
}

// errTokenRevoked: the token was valid, but an operator revoked the
// identity's step-ups made before it (`caddy sms-stepup revoke`).
var errTokenRevoked = errors.New("step-up token revoked")

// checkStepUp is every check a step-up cookie must pass: a valid token of
// this identity and session, no older than maxAge (0: its lifetime), and
// not revoked (errTokenRevoked). Whatever a step-up unlocks checks it
// through here.
func (h *Handler) checkStepUp(r *http.Request, token, identity, sessionHash string, maxAge time.Duration) (otp.Verified, error) {
	v, err := h.tokens.Check(token, identity, sessionHash, maxAge)
	if err != nil {
		return otp.Verified{}, err
	}
	if err := h.notRevoked(r, &v); err != nil {
		return otp.Verified{}, err
	}
	return v, nil
}

// notRevoked checks a verified token against its identity's not-before.
// The answer comes from memory, read from the store at most once per
// identity per revocation_refresh. When the store can't be read the last
// answer stands and the token passes (the hot path needs no store; a
// revocation takes effect within revocation_refresh once the store is
// back), with a warning at most
// once per refresh interval rather than one per request.
func (h *Handler) notRevoked(r *http.Request, v *otp.Verified) error {
	revoked, err := h.service.Revoked(r.Context(), v.Subject, v.AuthTime)
	if err != nil {
		h.warnRevocationsUnreadable(v.Subject, err)
	}
	if revoked {
		return errTokenRevoked
	}
	return nil
}

func (h *Handler) warnRevocationsUnreadable(identity string, err error) {
	now := h.clock.Now().UnixNano()
	last := h.revocationWarned.Load()
	if last != 0 && now-last < int64(h.service.Config().RevocationInterval()) && now >= last {
		return
	}
	if !h.revocationWarned.CompareAndSwap(last, now) {
		return // another request is logging it
	}
	h.logger.Warn("store unavailable: revocations can't be read, so valid step-up cookies still pass on what was last read; a revocation made meanwhile takes effect within revocation_refresh once the store is back (this warning repeats at most once per revocation_refresh)",
		zap.String("event", "revocations_unreadable"), zap.String("identity", identity), zap.Error(err))
}

// The placeholders of a step-up, for handlers after this one.
const (
	phIdentity   = "http.sms_stepup.identity"
	phVerifiedAt = "http.sms_stepup.verified_at"
	phAuthTime   = "http.sms_stepup.auth_time"
	phToken      = "http.sms_stepup.token"
)

// setPlaceholders sets the step-up placeholders to the token's values on
// the hot path, over any an earlier handler set (blankPlaceholders empties
// them where no handler steps the request up). The values were formatted
// when the token was first verified.
func (h *Handler) setPlaceholders(repl *caddy.Replacer, v *otp.Verified, token string) {
	repl.Set(phIdentity, v.Subject)
	repl.Set(phVerifiedAt, v.AuthTimeRFC3339)
	repl.Set(phAuthTime, v.AuthTimeUnix)
	repl.Set(phToken, token)
}

// upstreamHeaders is the set of X-Stepup-* headers the handler sets for the
// upstream on the hot path, one bit per header of upstreamHeaderNames.
type upstreamHeaders uint8

// The upstream headers, in canonical form, by option value. Whatever the
// client sent under X-Stepup-* was removed first (SECURITY.md rule 21), so
// the upstream can trust them.
var upstreamHeaderNames = [...]struct{ option, header string }{
	{"identity", "X-Stepup-Identity"},
	{"verified_at", "X-Stepup-Verified-At"},
	{"auth_time", "X-Stepup-Auth-Time"},
	{"token", "X-Stepup-Token"},
}

// parseUpstreamHeaders reads upstream_headers: empty is none.
func parseUpstreamHeaders(values []string) (upstreamHeaders, error) {
	if len(values) == 1 && values[0] == "none" {
		return 0, nil
	}
	var set upstreamHeaders
next:
	for _, v := range values {
		for i, n := range upstreamHeaderNames {
			if v == n.option {
				set |= 1 << i
				continue next
			}
		}
		return 0, fmt.Errorf("upstream_headers %q: expected identity, verified_at, auth_time and token, any of them, or none alone", v)
	}
	return set, nil
}

// setUpstreamHeaders sets the chosen X-Stepup-* request headers of a valid
// step-up. Each costs the proxy more than the rest of the hot path (Caddy
// copies, checks, logs and writes every header), hence none by default.
// The values share one fresh array, one
// allocation: a later handler may change a header's value in place, so the
// cached strings are never handed out in a shared slice.
func (h *Handler) setUpstreamHeaders(hdr http.Header, v *otp.Verified, token string) {
	set := h.upstream
	if set == 0 {
		return
	}
	vals := make([]string, bits.OnesCount8(uint8(set)))
	i := 0
	for b, n := range upstreamHeaderNames {
		if set&(1<<b) == 0 {
			continue
		}
		switch b {
		case 0:
			vals[i] = v.Subject
		case 1:
			vals[i] = v.AuthTimeRFC3339
		case 2:
			vals[i] = v.AuthTimeUnix
		case 3:
			vals[i] = token
		}
		hdr[n.header] = vals[i : i+1 : i+1]
		i++
	}
}

// identity is who the request's user is, from the identity placeholder.
func (h *Handler) identity(r *http.Request, repl *caddy.Replacer) string {
	return h.identityIn.resolve(r, repl)
}

// placeholderInput is how an option made of placeholders (identity,
// session) is read on each request, worked out at provision by inputOf.
type placeholderInput struct {
	expr   string // the option as written
	key    string // its key when it is exactly one placeholder
	header string // the canonical field name when that one is {http.request.header.*}
}

// inputOf works out how to read expr. An option that is exactly one
// placeholder ("{http.auth.user.id}") is looked up by its key, which spares
// parsing it on every request. A request header ("{http.request.header.X-User}",
// the README's set-up) is read from the request's header directly, the
// same value Caddy's http placeholders give (modules/caddyhttp/replacer.go:
// the field's values joined with ","; the replacer's request shares r's
// header map), without walking the replacer's providers to it.
func inputOf(expr string) placeholderInput {
	in := placeholderInput{expr: expr, key: placeholderKey(expr)}
	if field, ok := strings.CutPrefix(in.key, "http.request.header."); ok && field != "" {
		in.header = textproto.CanonicalMIMEHeaderKey(field)
	}
	return in
}

// resolve expands the option's placeholders on r.
func (in *placeholderInput) resolve(r *http.Request, repl *caddy.Replacer) string {
	switch {
	case in.header != "":
		return strings.Join(r.Header[in.header], ",")
	case in.key != "":
		s, _ := repl.GetString(in.key)
		return s
	}
	return repl.ReplaceAll(in.expr, "")
}

// placeholderKey is the key of expr when expr is exactly one placeholder
// and nothing else, else "".
func placeholderKey(expr string) string {
	if len(expr) < 3 || expr[0] != '{' || expr[len(expr)-1] != '}' {
		return ""
	}
	key := expr[1 : len(expr)-1]
	if strings.ContainsAny(key, "{}\\") {
		return ""
	}
	return key
}

// challenge answers a protected request that has no valid step-up: API
// clients get 401 with an RFC 9470 challenge, browsers a 303 to the page.
// It reads the identity's state first, so that with the store down the
// answer is a 503 at once (fail closed) rather than a page that can't work.
// maxAge is what the route demands, and what the client is told.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, identity string, maxAge time.Duration) error {
	ctx, cancel := requestContext(r)
	defer cancel()
	if _, err := h.service.Identity(ctx, identity); err != nil {
		return h.unavailable(h.newVisit(w, r, repl, identity), err)
	}
	ret := "/"
	notice := ""
	keptID, keptURL, kept := h.keepForm(w, r, repl, identity) // replay.go
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		ret = requestPath(r)
	case kept:
		// Kept for after the step-up, which comes back to it.
		ret, notice = keptURL, "kept"
	default:
		// A form post without step-up can't be replayed after it; send the
		// user back to the page they posted from and tell them.
		ret = sameSiteReferer(r)
		notice = "resubmit"
	}
	stepURL := h.PathPrefix + "/?r=" + urlQueryEscape(ret)
	if notice != "" {
		stepURL += "&n=" + notice
	}
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		maxAge := int(maxAge / time.Second)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_user_authentication", error_description="SMS step-up required", max_age="%d"`, maxAge))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		body := map[string]any{
			"error":             "insufficient_user_authentication",
			"error_description": "SMS step-up required",
			"max_age":           maxAge,
			"step_up_url":       stepURL,
			"state_url":         h.PathPrefix + "/api/state",
			"send_url":          h.PathPrefix + "/api/send",
			"verify_url":        h.PathPrefix + "/api/verify",
		}
		if h.Enroll {
			body["enroll_url"] = h.PathPrefix + "/api/enroll"
		}
		if kept {
			body["replay"] = h.replayJSON(keptID, keptURL)
		}
		return json.NewEncoder(w).Encode(body)
	}
	http.Redirect(w, r, stepURL, http.StatusSeeOther)
	return nil
}

func (h *Handler) refuseNoIdentity(w http.ResponseWriter, r *http.Request) error {
	h.audit(zapcore.WarnLevel, "request without identity refused", "no_identity", zap.String("path", r.URL.Path), zap.String("client_ip", clientIP(r)))
	if h.LoginURL != "" && !wantsJSON(r) {
		http.Redirect(w, r, h.LoginURL, http.StatusSeeOther)
		return nil
	}
	return h.renderError(w, r, http.StatusUnauthorized, "no_identity")
}

// requestContext bounds the store and gateway calls of one request.
func requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

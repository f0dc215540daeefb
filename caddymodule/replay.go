package caddymodule

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// A form POST that arrives at a protected route without a valid step-up is
// kept (SECURITY.md rule 36): sealed for its identity, session and the
// handler's scope, in the store for code_ttl under a one-time id that only
// this browser's replay cookie names. Once the user has stepped up, the
// resume page (replay_resume.go) posts that id alone to the same URL; the
// handler takes the kept form out of the store (once: an atomic take) and
// hands the upstream the original body, byte for byte, in place of the
// id. The fields never travel back to the browser.

// replayCookie names the kept form of this browser.
var replayCookie = cookie{"__Host-stepup_replay", "stepup_replay"}

// replayField is the one field the resume page posts; replayIDLength is
// the length of its value (randomToken(18)).
const (
	replayField    = "_stepup_replay"
	replayIDLength = 24
	formType       = "application/x-www-form-urlencoded"
)

// isFormPost is a POST of an urlencoded form.
func isFormPost(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == formType
}

// resubmissionID is the kept form's id when body is exactly what the
// resume page posts.
func resubmissionID(body []byte) (string, bool) {
	id, ok := bytes.CutPrefix(body, []byte(replayField+"="))
	if !ok || len(id) != replayIDLength {
		return "", false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return string(id), true
}

func (h *Handler) replayBinding(id, identity, sessionHash string) otp.ReplayBinding {
	return otp.ReplayBinding{ID: id, Identity: identity, SessionHash: sessionHash, Scope: h.audience}
}

// keepForm keeps the form POST r for after the step-up, and sets the
// replay cookie naming it. It keeps nothing (false) when replay is off,
// when r is not an urlencoded form posted from this site, when its body
// is over replay_max_body (read at most one byte past it, chunked or not)
// or when the store refuses it: the user is then asked to post again, as
// without replay. A resubmission that itself needs a step-up again names
// the form it still waits for instead of keeping a new one.
func (h *Handler) keepForm(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, identity string) (string, string, bool) {
	url := r.URL.RequestURI()
	if !h.replayOn() || h.replays == nil || !isFormPost(r) || !postedFromThisSite(r) || returnPath(url) != url {
		return "", "", false
	}
	limit := h.replayLimit()
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil || int64(len(body)) > limit {
		return "", "", false
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	sessionHash := h.sessionHash(r, repl)
	ttl := h.service.Config().CodeTTL
	if id, ok := resubmissionID(body); ok {
		f, ok, err := h.peekForm(ctx, id, identity, sessionHash)
		if err != nil || !ok || f.URL != url {
			return "", "", false
		}
		h.setCookie(w, r, replayCookie, id, ttl, http.SameSiteLaxMode)
		return id, url, true
	}
	id, err := randomToken(18)
	if err != nil {
		return "", "", false
	}
	sealed, err := h.keys.SealReplay(h.replayBinding(id, identity, sessionHash), otp.KeptForm{URL: url, Body: body})
	if err == nil {
		err = h.replays.KeepReplay(ctx, h.keys.ReplayKey(id), sealed, h.clock.Now(), ttl)
	}
	if err != nil {
		h.logger.Warn("form not kept for after the step-up; the user is asked to send it again",
			zap.String("identity", identity), zap.String("path", r.URL.Path), zap.Error(err))
		return "", "", false
	}
	h.setCookie(w, r, replayCookie, id, ttl, http.SameSiteLaxMode)
	h.audit(zapcore.InfoLevel, "form kept until the step-up", "replay_kept",
		zap.String("identity", identity), zap.String("path", r.URL.Path), zap.Int("bytes", len(body)), zap.String("client_ip", clientIP(r)))
	return id, url, true
}

// peekForm reads the kept form id of identity and session without taking
// it; false when there is none, or none that opens under this binding.
func (h *Handler) peekForm(ctx context.Context, id, identity, sessionHash string) (otp.KeptForm, bool, error) {
	if h.replays == nil || id == "" {
		return otp.KeptForm{}, false, nil
	}
	sealed, ok, err := h.replays.PeekReplay(ctx, h.keys.ReplayKey(id), h.clock.Now())
	if err != nil || !ok {
		return otp.KeptForm{}, false, err
	}
	f, err := h.keys.OpenReplay(h.replayBinding(id, identity, sessionHash), sealed)
	return f, err == nil, nil
}

// replayResubmission handles, on a request with a valid step-up, the
// resume page's post of a kept form's id: it takes the form out of the
// store and puts its body in place of the id, for the upstream. Any other
// request is left as it was (its body unread). done is true when the
// handler answered itself: the form was taken already or has expired
// (409), or it is not this identity's, session's, scope's or URL's (403,
// and it is gone).
func (h *Handler) replayResubmission(w http.ResponseWriter, r *http.Request, identity, sessionHash string) (done bool, err error) {
	if !h.replayOn() || h.replays == nil || !isFormPost(r) {
		return false, nil
	}
	head := make([]byte, len(replayField)+1+replayIDLength+1)
	n, _ := io.ReadFull(r.Body, head)
	head = head[:n]
	id, ok := resubmissionID(head)
	if !ok {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		return false, nil
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	sealed, ok, err := h.replays.TakeReplay(ctx, h.keys.ReplayKey(id), h.clock.Now())
	if err != nil {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		return true, h.unavailable(h.newVisit(w, r, repl, identity), err)
	}
	h.setCookie(w, r, replayCookie, "", -1, http.SameSiteLaxMode)
	fields := []zap.Field{zap.String("identity", identity), zap.String("path", r.URL.Path), zap.String("client_ip", clientIP(r))}
	if !ok {
		h.audit(zapcore.WarnLevel, "kept form refused: already sent or expired", "replay_refused", append(fields, zap.String("reason", "gone"))...)
		return true, h.renderError(w, r, http.StatusConflict, "replay_gone")
	}
	f, err := h.keys.OpenReplay(h.replayBinding(id, identity, sessionHash), sealed)
	if err != nil || f.URL != r.URL.RequestURI() {
		reason := "binding"
		if err == nil {
			reason = "url"
		}
		h.audit(zapcore.WarnLevel, "kept form refused: not this identity's, session's, site's or URL's", "replay_refused", append(fields, zap.String("reason", reason))...)
		return true, h.renderError(w, r, http.StatusForbidden, "replay_refused")
	}
	r.Body = io.NopCloser(bytes.NewReader(f.Body))
	r.ContentLength = int64(len(f.Body))
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.Itoa(len(f.Body)))
	h.audit(zapcore.InfoLevel, "kept form sent after the step-up", "replay_sent", append(fields, zap.Int("bytes", len(f.Body)))...)
	return false, nil
}

// replayJSON tells an API client about a waiting form and how to send it:
// POST body (an urlencoded form) to url, with the step-up cookie.
func (h *Handler) replayJSON(id, url string) map[string]any {
	return map[string]any{
		"method":       http.MethodPost,
		"url":          url,
		"resume":       h.PathPrefix + "/resume",
		"content_type": formType,
		"body":         replayField + "=" + id,
	}
}

// renderResume is the resume page: a form posting the kept form's id to
// its URL, sent by a nonce'd script, or by its button without JavaScript.
func (h *Handler) renderResume(v *visit, id, url string) error {
	if v.api || wantsJSON(v.r) {
		return writeJSON(v.w, http.StatusOK, map[string]any{"replay": h.replayJSON(id, url)})
	}
	return h.render(v, http.StatusOK, pages.Resume, pages.Data{ResumeURL: url, ResumeField: replayField, ResumeID: id})
}

// postedFromThisSite is stricter than originOK, which lets a POST without
// Origin or Sec-Fetch-Site through to be refused later by its CSRF token: a
// kept form is sent after the user confirms, so it must be shown to come
// from this site. The browser must say so (Sec-Fetch-Site same-origin, or
// an Origin of this host), and a Referer, when sent, must name this host
// too. A client that says nothing has its form dropped, as without replay.
func postedFromThisSite(r *http.Request) bool {
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	switch site, origin := r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin"); {
	case site != "":
		return site == "same-origin" && originOK(r)
	case origin == "" || origin == "null":
		return false
	}
	return originOK(r)
}

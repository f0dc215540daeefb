package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The application session a step-up is bound to (SECURITY.md rules 6, 15
// and 29). A configured session that comes out empty refuses the step-up:
// binding to "no session" would let the step-up outlive the session it was
// made in, and it happens silently when the cookie's name is not what the
// configuration says (oauth2-proxy splits a large session cookie into
// _oauth2_proxy_0, _oauth2_proxy_1, ..., leaving no _oauth2_proxy).

// maxSessionCookieParts bounds the numbered parts session_cookie joins.
// oauth2-proxy splits its cookie every 4 KB; 16 parts are more than a
// server takes in one request's headers.
const maxSessionCookieParts = 16

// sessionWarnEvery is how often the warning that sessions come out empty
// may repeat.
const sessionWarnEvery = time.Minute

// provisionSession names the parts session_cookie may be split into.
func (h *Handler) provisionSession() {
	h.sessionWarned = new(atomic.Int64)
	h.sessionParts = nil
	if h.SessionCookie == "" {
		return
	}
	for i := range maxSessionCookieParts {
		h.sessionParts = append(h.sessionParts, h.SessionCookie+"_"+strconv.Itoa(i))
	}
}

// validateSession checks that at most one session source is set, and that
// session_cookie names a cookie.
func (h *Handler) validateSession() error {
	if h.Session != "" && h.SessionCookie != "" {
		return errors.New("session and session_cookie: expected one of them, not both (session_cookie <name> reads the cookie, or its numbered parts)")
	}
	return checkCookieName(h.SessionCookie)
}

// checkCookieName accepts "" or an RFC 6265 cookie name.
func checkCookieName(name string) error {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return fmt.Errorf("session_cookie %q: expected a cookie name such as _oauth2_proxy (no spaces, separators or braces)", name)
		}
	}
	return nil
}

// session is r's application session as session or session_cookie reads
// it; ok is false when one of them is configured and it came out empty.
func (h *Handler) session(r *http.Request, repl *caddy.Replacer) (session string, ok bool) {
	switch {
	case h.SessionCookie != "":
		session = h.sessionCookie(r)
	case h.Session != "":
		session = h.sessionIn.resolve(r, repl)
	default:
		return "", true
	}
	return session, session != ""
}

// sessionHash is the keyed hash of r's session, "" hashed when it has none.
func (h *Handler) sessionHash(r *http.Request, repl *caddy.Replacer) string {
	s, _ := h.session(r, repl)
	return h.keys.SessionHash(s)
}

// sessionCookie reads the session_cookie cookie whole, or else its parts
// name_0, name_1, ... joined in order up to the first one missing.
func (h *Handler) sessionCookie(r *http.Request) string {
	if v := cookieValue(r, h.SessionCookie); v != "" {
		return v
	}
	first := cookieValue(r, h.sessionParts[0])
	if first == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(first)
	for _, name := range h.sessionParts[1:] {
		part := cookieValue(r, name)
		if part == "" {
			break
		}
		b.WriteString(part)
	}
	return b.String()
}

// refuseNoSession answers a request whose configured session came out
// empty: 401 and a page (or JSON) asking the user to sign in again; no pass,
// no code. Each refusal is an audit event; the warning that explains the
// likely cause repeats at most once a minute.
func (h *Handler) refuseNoSession(w http.ResponseWriter, r *http.Request, identity string) error {
	h.warnSessionMissing()
	h.audit(zapcore.InfoLevel, "step-up refused: the configured session is empty", "session_missing",
		zap.String("identity", identity), zap.String("path", r.URL.Path), zap.String("client_ip", clientIP(r)))
	return h.renderError(w, r, http.StatusUnauthorized, "session_missing")
}

func (h *Handler) warnSessionMissing() {
	now := h.clock.Now().UnixNano()
	last := h.sessionWarned.Load()
	if last != 0 && now >= last && now-last < int64(sessionWarnEvery) {
		return
	}
	if !h.sessionWarned.CompareAndSwap(last, now) {
		return // another request is logging it
	}
	source := "session " + h.Session
	if h.SessionCookie != "" {
		source = "session_cookie " + h.SessionCookie
	}
	h.logger.Warn("a request's session came out empty, so its step-up is refused (the user is asked to sign in again). If every request is refused, the session cookie is named differently: oauth2-proxy, for one, splits a large session cookie into _oauth2_proxy_0, _oauth2_proxy_1, ..., which session_cookie _oauth2_proxy reads whole. This warning repeats at most once a minute.",
		zap.String("event", "session_missing"), zap.String("source", source))
}

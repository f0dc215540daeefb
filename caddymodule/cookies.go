package caddymodule

import (
	"net/http"
	"time"

	"go.uber.org/zap"
)

// cookie names one of the plugin's cookies. Over HTTPS it carries the
// __Host- prefix, which browsers only accept with Secure, Path=/ and no
// Domain, so no subdomain can plant or overwrite it.
type cookie struct {
	secure string
	dev    string
}

var (
	tokenCookie     = cookie{"__Host-stepup", "stepup"}
	csrfCookie      = cookie{"__Host-stepup_csrf", "stepup_csrf"}
	challengeCookie = cookie{"__Host-stepup_challenge", "stepup_challenge"}
)

// devMode is plain http to a loopback host: browsers drop Secure cookies
// there (and so __Host- ones), so development falls back to plain names.
func devMode(r *http.Request) bool {
	return r.TLS == nil && isLoopbackHost(r.Host)
}

func (h *Handler) cookieName(r *http.Request, c cookie) string {
	if devMode(r) {
		return c.dev
	}
	return c.secure
}

// setCookie sets one of the plugin's cookies; maxAge 0 makes a session
// cookie, negative deletes it.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, c cookie, value string, maxAge time.Duration, sameSite http.SameSite) {
	dev := devMode(r)
	if dev {
		h.devCookieOnce.Do(func() {
			h.logger.Warn("plain-http loopback request: step-up cookies are set without Secure and without the __Host- prefix; this is for development only, serve over HTTPS in production",
				zap.String("host", r.Host))
		})
	}
	name := c.secure
	if dev {
		name = c.dev
	}
	age := 0
	switch {
	case maxAge > 0:
		age = int(maxAge / time.Second)
	case maxAge < 0:
		age = -1
	}
	if line := cookieLine(name, value, age, !dev, sameSite); line != "" {
		w.Header().Add("Set-Cookie", line) // cookie_header.go
		return
	}
	hc := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   !dev,
		SameSite: sameSite,
		MaxAge:   age,
	}
	http.SetCookie(w, hc)
}

package caddymodule

import (
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// visit is one request to the plugin's own pages, with what every page
// needs worked out once.
type visit struct {
	w           http.ResponseWriter
	r           *http.Request
	repl        *caddy.Replacer
	identity    string
	sessionHash string
	lang        string
	ret         string
	// query is the request's URL query, parsed once.
	query url.Values
	// api is a call to the JSON endpoints: answers are JSON, never pages
	// or redirects.
	api bool
	// req is what a POST sent, read from its form or its JSON body.
	req postRequest
	// device is the id of the browser's valid device cookie, or ""
	// (device.go).
	device string
	// phone is the number a send goes to, once the send or the send page
	// has looked it up, for the CAPTCHA's risk (risk_watch.go); zero
	// before.
	phone otp.Phone
	// shown, when shownRead, is the browser's challenge as a refused
	// send's store step read it (otp.SendResult.Shown), so the page that
	// shows it needs no read of its own (liveChallenge).
	shown     *otp.Challenge
	shownRead bool
}

// msg is page data carrying one message of the visitor's language.
func (v *visit) msg(key string, args ...string) pages.Data {
	return pages.Data{Message: pages.Msg(v.lang, key, args...), Key: key}
}

func (h *Handler) newVisit(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, identity string) *visit {
	q := query(r)
	return &visit{
		w:           w,
		r:           r,
		repl:        repl,
		identity:    identity,
		sessionHash: h.sessionHash(r, repl),
		lang:        pages.Lang(q.Get("lang"), r.Header.Get("Accept-Language")),
		query:       q,
		ret:         "/",
		device:      h.deviceOf(r),
	}
}

// liveChallenge is the browser's challenge if it is still live.
func (h *Handler) liveChallenge(v *visit) *otp.Challenge {
	id := cookieValue(v.r, h.cookieName(v.r, challengeCookie))
	if id == "" {
		return nil
	}
	if v.shownRead {
		return v.shown
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	c, err := h.service.Challenge(ctx, v.identity, v.sessionHash, id)
	if err != nil {
		return nil
	}
	return c
}

func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// retryIn is the whole seconds from now until t, at least 0.
func retryIn(now, t time.Time) int {
	if !now.Before(t) {
		return 0
	}
	return int((t.Sub(now) + time.Second - 1) / time.Second)
}

// query is r's URL query for reading, nil (which reads as empty) when the
// URL has none: the bots' posts have none, and parsing "" still allocates
// a map (issue 17).
func query(r *http.Request) url.Values {
	if r.URL.RawQuery == "" {
		return nil
	}
	return r.URL.Query()
}

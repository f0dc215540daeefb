package caddymodule

import (
	"encoding/json"
	"mime"
	"net/http"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// serveAPI serves the JSON step-up endpoints under {prefix}/api/, which let
// a single-page app step up inline instead of leaving the page:
//
//	GET  {prefix}/api/state   the CSRF token, the masked number and the
//	                          challenge in progress, if any
//	POST {prefix}/api/send    send a code (or a new one)
//	POST {prefix}/api/call    a new code read out by phone
//	POST {prefix}/api/verify  {"code": "123456"}; sets the step-up cookie
//	POST {prefix}/api/enroll  {"phone": "..."}: the number to register,
//	                          as the enrolment form (api_enroll.go)
//
// POSTs carry the token in an X-CSRF-Token header and a JSON body; a
// cross-site Origin is refused, and requiring application/json keeps plain
// HTML forms of other sites from reaching them at all.
func (h *Handler) serveAPI(v *visit, endpoint string) error {
	v.api = true
	v.w.Header().Set("Cache-Control", "no-store")
	switch endpoint {
	case "state":
		if v.r.Method != http.MethodGet {
			v.w.Header().Set("Allow", "GET")
			return h.render(v, http.StatusMethodNotAllowed, pages.Error, v.msg("method_not_allowed"))
		}
		return h.showPage(v, "", "")
	case "send", "call", "verify", "enroll":
	default:
		return h.render(v, http.StatusNotFound, pages.Error, v.msg("not_found"))
	}
	if v.r.Method != http.MethodPost {
		v.w.Header().Set("Allow", "POST")
		return h.render(v, http.StatusMethodNotAllowed, pages.Error, v.msg("method_not_allowed"))
	}
	if mt, _, _ := mime.ParseMediaType(v.r.Header.Get("Content-Type")); mt != "application/json" {
		return h.render(v, http.StatusUnsupportedMediaType, pages.Error, v.msg("api_json"))
	}
	req, ok := readJSON(v.w, v.r)
	if !ok {
		return h.render(v, http.StatusBadRequest, pages.Error, v.msg("api_json"))
	}
	v.req = req
	return h.servePost(v, endpoint, "API call refused: CSRF token or origin check failed")
}

// apiBody is a page's outcome as JSON: "error" is a stable word (the
// message's key) when the status is an error, "message" the sentence in the
// user's language, and the state a client needs to show the step.
func (h *Handler) apiBody(v *visit, status int, page string, data pages.Data) map[string]any {
	out := map[string]any{"page": page}
	if data.Message != "" {
		out["message"] = data.Message
	}
	if status >= 400 {
		key := data.Key
		if key == "" {
			key = page
		}
		out["error"] = key
	}
	if data.Masked != "" {
		out["masked"] = data.Masked
	}
	if page == pages.Code {
		out["remaining"] = data.Remaining
		out["retry_in"] = data.RetryIn
		out["can_call"] = data.CanCall
		if data.Delivery != "" {
			out["delivery"] = data.Delivery
		}
	} else if data.RetryIn > 0 {
		// A wait with no challenge of this session to show (a cooldown
		// after a send from another browser, a send limit): still said.
		out["retry_in"] = data.RetryIn
	}
	if c := h.apiCaptcha(v, page, data); c != nil {
		out["captcha"] = c
	}
	if v.api && v.identity != "" && (page == pages.Send || page == pages.Code || page == pages.Enroll) {
		out["csrf"] = h.csrfToken(v)
		out["code_length"] = h.service.Config().CodeLength
		enrollState(out, page, data)
		h.addWaitingForm(v, out) // a form kept for after the step-up (replay_resume.go)
	}
	return out
}

// csrfToken is the visitor's CSRF token, setting the nonce cookie it is
// bound to when the browser has none.
func (h *Handler) csrfToken(v *visit) string {
	nonce := cookieValue(v.r, h.cookieName(v.r, csrfCookie))
	if nonce == "" {
		var err error
		if nonce, err = randomToken(18); err != nil {
			return ""
		}
		h.setCookie(v.w, v.r, csrfCookie, nonce, 0, http.SameSiteStrictMode)
		// A second call within this request must see the same nonce.
		v.r.Header.Add("Cookie", h.cookieName(v.r, csrfCookie)+"="+nonce)
	}
	return h.keys.CSRFToken(h.csrfBinding(v, nonce), h.clock.Now())
}

func writeJSON(w http.ResponseWriter, status int, body any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(body)
}

package caddymodule

import (
	"net/http"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// resume serves GET {prefix}/resume: the page that sends the browser's
// kept form, once the user has stepped up. Without a kept form (sent
// already, expired, or never kept) it says so.
func (h *Handler) resume(v *visit) error {
	if v.r.Method != http.MethodGet && v.r.Method != http.MethodHead {
		return h.methodNotAllowed(v, "GET, HEAD")
	}
	id, url, ok, err := h.waitingForm(v)
	if err != nil {
		return h.unavailable(v, err)
	}
	if !ok {
		return h.render(v, http.StatusGone, pages.Error, v.msg("replay_gone"))
	}
	return h.renderResume(v, id, url)
}

// waitingForm is the form this browser's replay cookie names, if it is
// still kept for the visit's identity, session and scope.
func (h *Handler) waitingForm(v *visit) (id, url string, ok bool, err error) {
	id = cookieValue(v.r, h.cookieName(v.r, replayCookie))
	if id == "" || h.replays == nil || !h.replayOn() {
		return "", "", false, nil
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	f, ok, err := h.peekForm(ctx, id, v.identity, v.sessionHash)
	return id, f.URL, ok, err
}

// resumeAfterStepUp sends a browser that has just stepped up to the resume
// page when a form of its is waiting, and tells an API client how to send
// it.
func (h *Handler) resumeAfterStepUp(v *visit, o *outcome) {
	id, url, ok, err := h.waitingForm(v)
	if err != nil || !ok {
		return
	}
	o.redirect = h.PathPrefix + "/resume?r=" + urlQueryEscape(v.ret)
	o.body["replay"] = h.replayJSON(id, url)
}

// addWaitingForm puts the waiting form, if any, in an API answer.
func (h *Handler) addWaitingForm(v *visit, out map[string]any) {
	if id, url, ok, err := h.waitingForm(v); err == nil && ok {
		out["replay"] = h.replayJSON(id, url)
	}
}

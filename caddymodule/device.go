package caddymodule

import (
	"net/http"
	"time"

	"go.uber.org/zap"
)

// The device signal (issue 15): a first-party cookie naming the browser,
// a random id signed with a key derived from the handler's, set on the
// first visit to the step-up page. It counts sends per device (limits
// device), puts a short keyed hash of the device in the audit events of
// sends and verifications, and a device that never verified a code of the
// identity is a risk signal (risk.go). A cookie that doesn't verify is
// treated as absent: a new device, never an error.

var deviceCookie = cookie{"__Host-stepup_device", "stepup_device"}

// deviceLifetime is how long the device cookie lasts: the most browsers
// keep a cookie (400 days), longer than an identity remembers its devices.
const deviceLifetime = 400 * 24 * time.Hour

// deviceOf is the id of the request's device cookie, or "" when it has
// none or one this handler's keys didn't sign.
func (h *Handler) deviceOf(r *http.Request) string {
	v := cookieValue(r, h.cookieName(r, deviceCookie))
	if v == "" {
		return ""
	}
	id, ok := h.keys.OpenDeviceCookie(v)
	if !ok {
		for _, k := range h.retired {
			if id, ok = k.OpenDeviceCookie(v); ok {
				return id
			}
		}
		return ""
	}
	return id
}

// ensureDevice gives a visit without a valid device cookie a new one.
func (h *Handler) ensureDevice(v *visit) {
	if v.device != "" {
		return
	}
	id, err := randomToken(16)
	if err != nil {
		return // no device: it counts as a new one
	}
	h.setCookie(v.w, v.r, deviceCookie, h.keys.DeviceCookie(id), deviceLifetime, http.SameSiteLaxMode)
	v.device = id
}

// deviceField is the device's audit field: a short keyed hash, "" for
// none.
func (h *Handler) deviceField(v *visit) zap.Field {
	return zap.String("device", h.keys.DeviceHash(v.device))
}

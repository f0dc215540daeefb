package caddymodule

import "github.com/caddy-sms-stepup/caddy-sms-stepup/pages"

// Enrolment for JSON clients. POST {prefix}/api/enroll {"phone": "..."}
// starts an enrolment exactly as the form does (decideEnroll: the same
// policy, refusals and cookies); api/send and api/verify then complete
// it, binding the number and stepping up together. What the client must
// do next is in api/state's answer (enrollState).

// enrollState tells a JSON client where the identity stands: "enroll"
// when it has no number and must register one first ("changing" when it
// is replacing one); "enrolling" with the number read back in full while
// one is being registered, for the person to confirm before api/send;
// "can_change" when it may replace its own (after a fresh step-up on it).
func enrollState(out map[string]any, page string, data pages.Data) {
	switch page {
	case pages.Enroll:
		out["enroll"] = true
		if data.Changing {
			out["changing"] = true
		}
	case pages.Send:
		out["enroll"] = false
		out["can_change"] = data.CanChange
		if data.Enrolling {
			out["enrolling"] = true
			out["formatted"] = data.Formatted
		}
	}
}

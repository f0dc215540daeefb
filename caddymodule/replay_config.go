package caddymodule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// ReplayOptions are about requests the upstream gets after a step-up: the
// form POST kept while the user steps up (replay.go), and the step-up an
// application asks for itself with an RFC 9470 challenge
// (app_triggered.go).
type ReplayOptions struct {
	// "off" drops a form POST that arrives without a valid step-up, and
	// the user is asked to send it again after stepping up. Default (or
	// "on"): such a form (application/x-www-form-urlencoded, posted from
	// this site) is kept, sealed, in the store for code_ttl, and sent to
	// the same URL once the user has stepped up, once.
	Replay string `json:"replay,omitempty"`
	// The largest form body kept, in bytes, at most 1 MiB. A larger one
	// is not kept. Default: 64 KiB.
	ReplayMaxBody int64 `json:"replay_max_body,omitempty"`
	// Matchers for requests whose upstream may ask for a step-up itself,
	// answering 401 with WWW-Authenticate: Bearer
	// error="insufficient_user_authentication" (RFC 9470), even where
	// protect and the routes need none.
	AppTriggeredRaw caddyhttp.RawMatcherSets `json:"app_triggered,omitempty" caddy:"namespace=http.matchers"`
}

// Replay's limits.
const (
	defaultReplayMaxBody = 64 << 10
	maxReplayMaxBody     = 1 << 20
)

// replayOn says whether form POSTs are kept.
func (h *Handler) replayOn() bool { return h.Replay != "off" }

// replayLimit is replay_max_body with its default.
func (h *Handler) replayLimit() int64 {
	if h.ReplayMaxBody > 0 {
		return h.ReplayMaxBody
	}
	return defaultReplayMaxBody
}

// validateReplay checks replay and replay_max_body.
func (h *Handler) validateReplay() error {
	switch h.Replay {
	case "", "on", "off":
	default:
		return optionErrorf("replay", "replay %q: expected off (or on, the default)", h.Replay)
	}
	if h.ReplayMaxBody < 0 || h.ReplayMaxBody > maxReplayMaxBody {
		return optionErrorf("replay_max_body", "replay_max_body %d: expected a size from 1 byte to 1MiB, such as 64KiB (the default)", h.ReplayMaxBody)
	}
	return nil
}

// parseSize reads a size of replay_max_body: bytes, or a number with KiB,
// KB, MiB or MB (powers of 1024 all).
func parseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"KB", 1 << 10}, {"MiB", 1 << 20}, {"MB", 1 << 20}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > maxReplayMaxBody/mult {
		return 0, fmt.Errorf("%q: expected a size from 1 byte to 1MiB, such as 64KiB", s)
	}
	return n * mult, nil
}

// replayStoreOf is where the store module keeps forms.
func replayStoreOf(s otp.Store) (otp.ReplayStore, bool) {
	inner := s
	switch m := s.(type) {
	case *MemoryStore:
		inner = m.Store
	case *RedisStore:
		inner = m.Store
	}
	rs, ok := inner.(otp.ReplayStore)
	return rs, ok
}

// provisionReplay finds where the store keeps forms and loads the
// app_triggered matchers; after provisionStore.
func (h *Handler) provisionReplay(p *provisioning) error {
	var ok bool
	if h.replays, ok = replayStoreOf(h.store); !ok && h.replayOn() {
		h.logger.Warn("the store can't keep forms: a form posted without a valid step-up is not kept, and the user is asked to send it again",
			zap.String("store", fmt.Sprintf("%T", h.store)))
	}
	if h.AppTriggeredRaw == nil {
		return nil
	}
	mods, err := p.ctx.LoadModule(h, "AppTriggeredRaw")
	if err != nil {
		return fmt.Errorf("app_triggered: %w", err)
	}
	h.warnAppCannotSeeStepUps()
	return h.appTriggered.FromInterface(mods)
}

// warnAppCannotSeeStepUps: on a route only app_triggered covers, the
// application judges the step-up itself, from the upstream headers. With
// none of them it never learns that the user stepped up, asks again, and
// the user lands on the loop's error page.
func (h *Handler) warnAppCannotSeeStepUps() {
	for _, o := range []string{"auth_time", "verified_at", "token"} {
		if slices.Contains(h.UpstreamHeaders, o) {
			return
		}
	}
	h.logger.Warn("app_triggered: upstream_headers has none of auth_time, verified_at or token, so on routes nothing else protects the application can't see that the user stepped up and will ask again; add upstream_headers auth_time")
}

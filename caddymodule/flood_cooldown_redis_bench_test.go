package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
)

// BenchmarkCooldownSendRedis is BenchmarkCooldownSend on a Redis store of
// its own (a real redis-server on a free port): the refused send's store
// step is a round trip, and so was each read the page needed, so this is
// where the send's step returning the challenge and keeping the refusal's
// history entry shows (issue 17).
func BenchmarkCooldownSendRedis(b *testing.B) {
	redistest.Require(b, "redis-server")
	srv := redistest.Start(b)
	e := htNew(b, nil, func(h *Handler) {
		h.StoreRaw, _ = json.Marshal(map[string]string{"type": "redis", "url": "redis://" + srv.Addr})
	})
	bot := e.browser("bot")
	bot.send()
	if rec, body := bot.postSend(); rec.Code != http.StatusTooManyRequests {
		b.Fatalf("the bot's second send answered %d, want 429:\n%s", rec.Code, body)
	}
	form := url.Values{"csrf": {bot.csrf()}, "r": {"/settings"}}
	sent := len(e.messages())
	benchPosts(b, e, bot, "/_stepup/send", form, "a send")
	if n := len(e.messages()); n != sent {
		b.Fatalf("%d messages sent during the benchmark, want none", n-sent)
	}
}

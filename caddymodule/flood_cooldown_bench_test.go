package caddymodule

import (
	"net/http"
	"net/url"
	"testing"
)

// BenchmarkCooldownSend is a bot's send within its resend cooldown while
// its challenge is live, in process: in bench/flood most of a bot's sends
// are refused so (the store checks the cooldown before the limits), and
// the answer is the code page with the wait (issue 17). The whole handler
// runs as in Caddy: CSRF, the number, the store's refusal, the live
// challenge, the audit entry and the 429 page. Requests are made while
// the timer is stopped.
func BenchmarkCooldownSend(b *testing.B) {
	benchCooldownSends(b, htNew(b, nil, nil))
}

// benchCooldownSends times a bot's sends that e's cooldown refuses, after
// its first went out; none may reach the gateway.
func benchCooldownSends(b *testing.B, e *htEnv) {
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

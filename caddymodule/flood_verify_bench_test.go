package caddymodule

import (
	"net/http"
	"net/url"
	"testing"
)

// BenchmarkWrongCodeVerify is a bot's wrong-code verify, in process, once
// its challenge has spent its attempts: the state a verify flood settles
// in (issue 17). The whole handler runs as in Caddy: CSRF, the store's
// verify and the 422 page. Requests are made while the timer is stopped.
func BenchmarkWrongCodeVerify(b *testing.B) {
	e := htNew(b, nil, nil)
	bot := e.browser("bot")
	wrong := htWrong(bot.send())
	for range 20 { // past any max_attempts
		bot.verify(wrong)
	}
	if rec, body := bot.verify(wrong); rec.Code != http.StatusUnprocessableEntity {
		b.Fatalf("the bot's verify answered %d, want 422:\n%s", rec.Code, body)
	}
	form := url.Values{"csrf": {bot.csrf()}, "r": {"/settings"}, "code": {wrong}}
	benchPosts(b, e, bot, "/_stepup/verify", form, "a wrong code")
	if bot.cookie("__Host-stepup") != "" {
		b.Fatal("the bot got a step-up")
	}
}

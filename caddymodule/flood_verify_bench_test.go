package caddymodule

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
	w := htDiscard{h: http.Header{}}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		b.Fatal("a wrong code reached the next handler")
		return nil
	})
	const batch = 256
	reqs := make([]*http.Request, batch)
	i := batch
	b.ReportAllocs()
	for b.Loop() {
		if i == batch {
			b.StopTimer()
			for j := range reqs {
				reqs[j] = bot.request(http.MethodPost, "/_stepup/verify", form)
			}
			i = 0
			b.StartTimer()
		}
		clear(w.h)
		if err := e.h.ServeHTTP(w, reqs[i], next); err != nil {
			b.Fatal(err)
		}
		reqs[i] = nil
		i++
	}
	b.StopTimer()
	if bot.cookie("__Host-stepup") != "" {
		b.Fatal("the bot got a step-up")
	}
}

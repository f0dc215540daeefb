package caddymodule

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkRefusedSend is one send a limit refuses, in process: what each
// request of a pumping bot costs once its address has spent its sends
// (issue 17: at most 50 µs of CPU). The whole handler runs as in Caddy:
// CSRF, the number, the store's limit check, the audit entry and the 429
// page. Requests are made while the timer is stopped.
func BenchmarkRefusedSend(b *testing.B) {
	one := 1
	e := htNew(b, nil, func(h *Handler) { h.Limits = &LimitsConfig{IP: &one} })
	e.browser("alice").send() // the address's one send
	bot := e.browser("bot")
	form := url.Values{"csrf": {bot.csrf()}, "r": {"/settings"}}
	if rec, body := bot.postSend(); rec.Code != http.StatusTooManyRequests {
		b.Fatalf("the bot's send answered %d, want 429:\n%s", rec.Code, body)
	}
	sent := len(e.messages())
	benchPosts(b, e, bot, "/_stepup/send", form, "a send")
	if n := len(e.messages()); n != sent {
		b.Fatalf("%d messages sent during the benchmark, want none", n-sent)
	}
}

// benchPosts times bot's POSTs of form to path through the whole handler,
// one at a time, making the requests in batches while the timer is
// stopped. None may reach the next handler (what names the request).
func benchPosts(b *testing.B, e *htEnv, bot *htBrowser, path string, form url.Values, what string) {
	b.Helper()
	w := htDiscard{h: http.Header{}}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		b.Fatal(what + " reached the next handler")
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
				reqs[j] = bot.request(http.MethodPost, path, form)
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
}

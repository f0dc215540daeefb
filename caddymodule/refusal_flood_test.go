package caddymodule

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// A flood of sends to one number prefix over its limit, as bench/flood's
// bots send them (issue 17): only the first refused send reaches the
// store; every later one gets the same 429 send page and Retry-After,
// and its own audit line, marked repeated, with the limit named. On both
// stores; the Redis one a real redis-server of the test's own.
func TestPrefixFloodReachesTheStoreOnce(t *testing.T) {
	stores := []struct {
		name  string
		store func(t *testing.T) json.RawMessage
	}{
		{"memory", func(*testing.T) json.RawMessage { return nil }},
		{"redis", func(t *testing.T) json.RawMessage {
			redistest.Require(t, "redis-server")
			srv := redistest.Start(t)
			raw, _ := json.Marshal(map[string]string{"type": "redis", "url": "redis://" + srv.Addr})
			return raw
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			one := 1
			raw := st.store(t)
			e := htNew(t, nil, func(h *Handler) {
				h.Limits = &LimitsConfig{Prefix: &one}
				if raw != nil {
					h.StoreRaw = raw
				}
			})
			logs := htObserve(e)
			e.browser("alice").send() // the prefix's one send (every browser has the same number)
			bot := e.browser("bot")
			bot.csrf()
			sent := len(e.messages())
			calls := e.store.calls.Load()
			first, body := bot.postSend()
			htWant(t, "the store's refusal", first, body, http.StatusTooManyRequests, "Too many codes were requested.")
			if e.store.calls.Load() == calls {
				t.Fatal("the first refused send did not reach the store")
			}
			calls = e.store.calls.Load()
			const flood = 50
			for range flood {
				w, body := bot.postSend()
				htWant(t, "a flooded send", w, body, http.StatusTooManyRequests, "Too many codes were requested.")
				if w.Header().Get("Retry-After") != first.Header().Get("Retry-After") {
					t.Fatalf("a repeat's Retry-After %q, the store's %q", w.Header().Get("Retry-After"), first.Header().Get("Retry-After"))
				}
			}
			if n := e.store.calls.Load() - calls; n != 0 {
				t.Errorf("%d store calls for %d sends to a prefix the store refused, want 0", n, flood)
			}
			if n := len(e.messages()) - sent; n != 0 {
				t.Errorf("%d messages sent during the flood", n)
			}
			var stores, repeats int
			for _, entry := range htEvents(logs, "rate_limited") {
				fields := entry.ContextMap()
				if fields["limit"] != otp.LimitPrefix || fields["identity"] != "bot" || fields["phone"] == nil {
					t.Fatalf("audit line %v, want the bot's prefix refusal with its masked number", fields)
				}
				if fields["repeated"] == true {
					repeats++
				} else {
					stores++
				}
			}
			if stores != 1 || repeats != flood {
				t.Errorf("audit: %d store refusals and %d repeats, want 1 and %d", stores, repeats, flood)
			}
		})
	}
}

// TestHeldRefusalCostsNoCarrierLookup: once the store has refused a number
// prefix, a flood of sends to new numbers in it is refused before the
// carrier look-up, which each new number would otherwise pay for.
func TestHeldRefusalCostsNoCarrierLookup(t *testing.T) {
	t.Parallel()
	f := lkNewFake(t)
	numbers := make([]string, 10)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("+1201555%04d", 200+i) // one prefix, +1201555
		f.mu.Lock()
		f.types[numbers[i]] = "mobile"
		f.mu.Unlock()
	}
	one := 1
	e := htNew(t, nil, func(h *Handler) {
		h.Phone, h.AllowCountries, h.Lookup = "{http.request.header.X-Phone}", []string{"US"}, lkTwilio(f)
		h.HeadersSetBy = "trusted_proxy" // the test's requests come from one (htBrowser.request)
		h.Limits = &LimitsConfig{Prefix: &one}
	})
	send := func(b *htBrowser, number string) *httptest.ResponseRecorder {
		t.Helper()
		if b.token == "" {
			w, body := b.do(http.MethodGet, "/_stepup/?r=%2Fsettings", nil, "X-Phone: "+number)
			m := htFieldRE.FindStringSubmatch(body)
			if w.Code != http.StatusOK || m == nil || m[1] != "csrf" {
				t.Fatalf("step-up page: %d\n%s", w.Code, body)
			}
			b.keepCSRF(html.UnescapeString(m[2]))
		}
		w, _ := b.do(http.MethodPost, "/_stepup/send", url.Values{"csrf": {b.token}, "r": {"/settings"}}, "X-Phone: "+number)
		return w
	}
	if w := send(e.browser("alice"), numbers[0]); w.Code != http.StatusSeeOther {
		t.Fatalf("the prefix's one send: %d", w.Code)
	}
	bot := e.browser("bot")
	if w := send(bot, numbers[1]); w.Code != http.StatusTooManyRequests {
		t.Fatalf("the store's refusal: %d", w.Code)
	}
	if n := f.requests(); n != 2 {
		t.Fatalf("%d look-ups before the flood, want one per number sent to", n)
	}
	for _, number := range numbers[2:] {
		if w := send(bot, number); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Fatalf("a flooded send to %s: %d, Retry-After %q", number, w.Code, w.Header().Get("Retry-After"))
		}
	}
	if n := f.requests(); n != 2 {
		t.Errorf("%d look-ups after a flood of %d sends to a held prefix, want still 2", n, len(numbers)-2)
	}
}

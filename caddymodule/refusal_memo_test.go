package caddymodule

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// rmSendFrom posts a send from browser b as client address ip.
func rmSendFrom(t *testing.T, b *htBrowser, ip, csrf string) *http.Response {
	t.Helper()
	r := b.request(http.MethodPost, "/_stepup/send", url.Values{"csrf": {csrf}, "r": {"/settings"}})
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip}))
	w := &htRecorder{h: http.Header{}}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	if err := b.e.h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	b.jar.SetCookies(htBase, (&http.Response{Header: w.h}).Cookies())
	return &http.Response{StatusCode: w.code, Header: w.h}
}

type htRecorder struct {
	h    http.Header
	code int
}

func (r *htRecorder) Header() http.Header         { return r.h }
func (r *htRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *htRecorder) WriteHeader(code int)        { r.code = code }

// Once the store refused an address by its limit, the handler repeats the
// refusal without the store (the saving), with the store's Retry-After;
// the CSRF check still comes first; another address, and the same one
// once the hold has passed, go to the store again, and a first send from
// another address passes.
func TestRefusalMemoRepeatsTheStoresAddressRefusal(t *testing.T) {
	one := 1
	clock := htNewClock()
	e := htNew(t, clock, func(h *Handler) { h.Limits = &LimitsConfig{IP: &one} })
	alice, bot := e.browser("alice"), e.browser("bot")
	if res := rmSendFrom(t, alice, "192.0.2.10", alice.csrf()); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("alice's first send: %d", res.StatusCode)
	}
	first := rmSendFrom(t, bot, "192.0.2.10", bot.csrf())
	if first.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the bot's send over the address limit: %d, want 429", first.StatusCode)
	}
	calls := e.store.calls.Load()
	for range 5 {
		res := rmSendFrom(t, bot, "192.0.2.10", bot.csrf())
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != first.Header.Get("Retry-After") {
			t.Fatalf("repeated refusal: %d, Retry-After %q, want 429 and %q", res.StatusCode, res.Header.Get("Retry-After"), first.Header.Get("Retry-After"))
		}
	}
	if n := e.store.calls.Load() - calls; n != 0 {
		t.Errorf("%d store calls for 5 refusals the memo holds, want 0", n)
	}
	if res := rmSendFrom(t, bot, "192.0.2.10", "forged"); res.StatusCode != http.StatusForbidden {
		t.Errorf("a held address with a bad CSRF token: %d, want 403", res.StatusCode)
	}
	// Another address is the store's to judge: its first send passes.
	carol := e.browser("carol")
	if res := rmSendFrom(t, carol, "198.51.100.7", carol.csrf()); res.StatusCode != http.StatusSeeOther {
		t.Errorf("another address's first send: %d, want 303", res.StatusCode)
	}
	clock.Add(otp.RefusalHold)
	calls = e.store.calls.Load()
	if res := rmSendFrom(t, bot, "192.0.2.10", bot.csrf()); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after the hold, still within the store's window: %d, want 429", res.StatusCode)
	}
	if e.store.calls.Load() == calls {
		t.Error("after the hold the store was not asked")
	}
}

// A store that cannot be reached is a 503 for an address the memo does
// not hold, and is never remembered as a refusal.
func TestRefusalMemoStoreDownFailsClosed(t *testing.T) {
	one := 1
	e := htNew(t, nil, func(h *Handler) { h.Limits = &LimitsConfig{IP: &one} })
	bot := e.browser("bot")
	csrf := bot.csrf()
	e.store.down.Store(true)
	for range 2 {
		if res := rmSendFrom(t, bot, "192.0.2.10", csrf); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("store down: %d, want 503", res.StatusCode)
		}
	}
	// Nothing was held: back up, the store passes the bot's first send.
	e.store.down.Store(false)
	if res := rmSendFrom(t, bot, "192.0.2.10", csrf); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the first send once the store is back: %d, want 303 (an outage was held as a refusal)", res.StatusCode)
	}
}

// An IPv6 address is held by its /64, as the store counts it: another
// address of the /64 is refused without the store, one outside it is the
// store's to judge.
func TestRefusalMemoHoldsTheStoresIPv6Bucket(t *testing.T) {
	one := 1
	e := htNew(t, nil, func(h *Handler) { h.Limits = &LimitsConfig{IP: &one} })
	alice, bot := e.browser("alice"), e.browser("bot")
	if res := rmSendFrom(t, alice, "2001:db8:7:7::2", alice.csrf()); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("alice's first send: %d", res.StatusCode)
	}
	if res := rmSendFrom(t, bot, "2001:db8:7:7::3", bot.csrf()); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second send from the /64: %d, want 429", res.StatusCode)
	}
	calls := e.store.calls.Load()
	if res := rmSendFrom(t, bot, "2001:db8:7:7:ffff::9", bot.csrf()); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("another address of the /64: %d, want 429", res.StatusCode)
	}
	if n := e.store.calls.Load() - calls; n != 0 {
		t.Errorf("%d store calls for a held /64, want 0", n)
	}
	carol := e.browser("carol")
	if res := rmSendFrom(t, carol, "2001:db8:7:8::3", carol.csrf()); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the next /64's first send: %d, want 303", res.StatusCode)
	}
}

package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// The two requests bench/flood's bots mostly make (issue 17), as its run
// shows them: every bot's number is in one range, so after the range's
// first few sends the prefix limit (or the fraud guard) refuses every send,
// and the bot never gets a challenge; its verifies then have no challenge
// to check. Both answer with the send page and a message.

// BenchmarkPrefixRefusedSend is a bot's send that the prefix limit refuses,
// without a challenge: CSRF, the number, the store's refusal repeated by
// the service without a store step (otp/refusal_memo.go; the store is
// asked again once every otp.RefusalHold), the audit entry and the 429
// send page.
func BenchmarkPrefixRefusedSend(b *testing.B) {
	benchPrefixRefusedSends(b, nil)
}

// benchPrefixRefusedSends times a bot's sends refused by the prefix limit
// on a handler whose store is storeRaw (nil: memory).
func benchPrefixRefusedSends(b *testing.B, storeRaw json.RawMessage) {
	one := 1
	e := htNew(b, nil, func(h *Handler) {
		h.Limits = &LimitsConfig{Prefix: &one}
		if storeRaw != nil {
			h.StoreRaw = storeRaw
		}
	})
	e.browser("alice").send() // the range's one send (same number, same prefix)
	bot := e.browser("bot")
	if rec, body := bot.postSend(); rec.Code != http.StatusTooManyRequests {
		b.Fatalf("the bot's send answered %d, want 429:\n%s", rec.Code, body)
	}
	if bot.cookie("__Host-stepup_challenge") != "" {
		b.Fatal("the refused bot has a challenge")
	}
	form := url.Values{"csrf": {bot.csrf()}, "r": {"/settings"}}
	sent := len(e.messages())
	benchPosts(b, e, bot, "/_stepup/send", form, "a send")
	if n := len(e.messages()); n != sent {
		b.Fatalf("%d messages sent during the benchmark, want none", n-sent)
	}
}

// BenchmarkNoChallengeVerify is a bot's verify with a wrong code and no
// challenge: CSRF and the 422 send page.
func BenchmarkNoChallengeVerify(b *testing.B) {
	e := htNew(b, nil, nil)
	bot := e.browser("bot")
	form := url.Values{"csrf": {bot.csrf()}, "r": {"/settings"}, "code": {"000000"}}
	if rec, body := bot.do(http.MethodPost, "/_stepup/verify", form); rec.Code != http.StatusUnprocessableEntity {
		b.Fatalf("the bot's verify answered %d, want 422:\n%s", rec.Code, body)
	}
	benchPosts(b, e, bot, "/_stepup/verify", form, "a wrong code")
	if bot.cookie("__Host-stepup") != "" {
		b.Fatal("the bot got a step-up")
	}
}

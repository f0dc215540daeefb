package caddymodule

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/console"
)

// secHistoryEnv is a flow environment whose service keeps the send history
// in the handler's own store (the harness's counting wrapper keeps none).
func secHistoryEnv(t *testing.T, configure func(*Handler)) *htEnv {
	t.Helper()
	e := htNew(t, nil, configure)
	svc, err := otp.NewService(e.h.service.Config(), e.store.Store, console.New(nil, e.outbox, e.clock), e.h.keys, e.clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !svc.HistoryPolicy().On() {
		t.Fatal("the service keeps no history: the test would prove nothing")
	}
	e.h.service = svc
	return e
}

// secHistoryStepUp sends user a code, types a wrong one and the right one.
func secHistoryStepUp(t *testing.T, e *htEnv, user string) string {
	t.Helper()
	b := secBrowser(t, e, user)
	code := b.send()
	b.verify(htWrong(code))
	w, body := b.verify(code)
	htWant(t, "the right code", w, body, 303, "")
	return code
}

func TestSecurityRule35_HistoryHoldsNoFullNumberNorCode(t *testing.T) {
	t.Parallel()
	t.Run("the history an operator reads shows the number masked, never in full, and never the code", func(t *testing.T) {
		t.Parallel()
		e := secHistoryEnv(t, nil)
		code := secHistoryStepUp(t, e, "r33-read")
		for _, q := range []otp.HistoryQuery{{Identity: "r33-read"}, {Prefix: "+81901234"}} {
			entries, err := e.h.service.History(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 3 {
				t.Fatalf("%+v: %d entries, want the send and two verifications", q, len(entries))
			}
			doc, _ := json.Marshal(entries)
			text := string(doc) + fmt.Sprintf("%+v", entries)
			for _, f := range secNumberForms(htNumber) {
				if strings.Contains(text, f) {
					t.Errorf("%+v: the history holds the number as %q: %s", q, f, doc)
				}
			}
			if secHasCode(text, code) {
				t.Errorf("%+v: the history holds the code %s: %s", q, code, doc)
			}
			if strings.Count(text, "+81 90-****-5678") < 3 {
				t.Errorf("%+v: the entries lack the masked number; are they the right ones? %s", q, doc)
			}
		}
	})
	t.Run("a Redis dump of the history holds no number, no code and no identity in clear, not even the masked number", func(t *testing.T) {
		t.Parallel()
		srv := secRedis(t)
		e := secHistoryEnv(t, secRedisStore(srv))
		code := secHistoryStepUp(t, e, "r33-dump")
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		keys, err := client.Keys(t.Context(), "*hist:*").Result()
		// Two lists: the challenge keeps the name of its prefix's list
		// itself, so no list per challenge is kept (issue 17).
		if err != nil || len(keys) != 2 {
			t.Fatalf("history keys %v, %v; want the identity's and the prefix's", keys, err)
		}
		var dump strings.Builder
		for _, k := range keys {
			dump.WriteString(k + "\n")
			for _, m := range client.ZRange(t.Context(), k, 0, -1).Val() {
				dump.WriteString(m + "\n")
			}
		}
		d := dump.String()
		for _, f := range append(secNumberForms(htNumber), "+81901234", "r33-dump", "+81 90-****-5678", "****") {
			if strings.Contains(d, f) {
				t.Errorf("the history in Redis holds %q", f)
			}
		}
		if secHasCode(d, code) {
			t.Errorf("the history in Redis holds the code %s", code)
		}
		for _, k := range keys {
			if ttl := client.PTTL(t.Context(), k).Val(); ttl <= 0 {
				t.Errorf("history key %s has no expiry (%s)", k, ttl)
			}
		}
	})
	t.Run("history_max bounds what an identity's history keeps", func(t *testing.T) {
		t.Parallel()
		e := secHistoryEnv(t, func(h *Handler) { h.HistoryMax = 2 })
		secHistoryStepUp(t, e, "r33-cap")
		entries, err := e.h.service.History(t.Context(), otp.HistoryQuery{Identity: "r33-cap"})
		if err != nil || len(entries) != 2 || entries[0].Outcome != "ok" || entries[1].Outcome != "wrong_code" {
			t.Fatalf("history with history_max 2: %+v, %v; want the two verifications", entries, err)
		}
	})
}

package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// htObserve sends the handler's log to an observer, so a test can count
// its events.
func htObserve(e *htEnv) *observer.ObservedLogs {
	core, logs := observer.New(zapcore.DebugLevel)
	e.h.logger = zap.New(core)
	return logs
}

// htEvents counts the log entries whose "event" field is event.
func htEvents(logs *observer.ObservedLogs, event string) []observer.LoggedEntry {
	return logs.Filter(func(e observer.LoggedEntry) bool {
		return e.ContextMap()["event"] == event
	}).All()
}

// revokeOnStore sets subject's not-before straight in the store, as
// another instance or `caddy sms-stepup revoke` would: this handler learns
// of it only by reading the store.
func (e *htEnv) revokeOnStore(subject string) {
	e.t.Helper()
	if err := e.store.Store.Revoke(context.Background(), subject, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
}

func TestRevocationReachesTheHotPath(t *testing.T) {
	t.Parallel()
	const refresh = 10 * time.Second // the default
	e := htNew(t, nil, nil)
	logs := htObserve(e)
	b := e.browser("alice")
	b.stepUp()
	b.wantPass("right after the step-up")
	revoked := b.cookie("__Host-stepup")

	e.clock.Add(time.Second) // the revocation comes after the step-up
	e.revokeOnStore("alice")
	e.clock.Add(refresh - 2*time.Second)
	b.wantPass("revoked on the store, within revocation_refresh of the last read")
	if n := len(htEvents(logs, "token_revoked")); n != 0 {
		t.Fatalf("%d token_revoked events before the refusal", n)
	}

	e.clock.Add(2 * time.Second)
	w, body := b.get("/settings", "Accept: application/json")
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) ||
		!strings.Contains(body, `"step_up_url":"/_stepup/?r=%2Fsettings"`) {
		t.Fatalf("JSON client with a revoked cookie: %d, WWW-Authenticate %q:\n%s", w.Code, w.Header().Get("WWW-Authenticate"), body)
	}
	if c := htSetCookie(w, "__Host-stepup"); c == nil || c.MaxAge >= 0 {
		t.Fatalf("the revoked cookie was not cleared: Set-Cookie %q", w.Header().Values("Set-Cookie"))
	}
	events := htEvents(logs, "token_revoked")
	if len(events) != 1 {
		t.Fatalf("%d token_revoked events after one refused request, want 1", len(events))
	}
	fields := events[0].ContextMap()
	if fields["identity"] != "alice" || fields["reason"] == "" {
		t.Errorf("token_revoked event %v: want the identity and a reason", fields)
	}
	for _, f := range events[0].Context {
		if f.String == revoked {
			t.Errorf("the token_revoked event logs the token in %q", f.Key)
		}
	}

	b.setCookie("__Host-stepup", revoked) // a browser that kept it
	b.wantStepUp("a browser with the revoked cookie")
	if n := len(htEvents(logs, "token_revoked")); n != 2 {
		t.Fatalf("%d token_revoked events after two refused requests, want 2", n)
	}

	b.stepUp()
	b.wantPass("after stepping up again")
	e.clock.Add(refresh)
	b.wantPass("after stepping up again, once the revocation was read again")
}

// TestRevocationOnASharedRedisStopsACookie: another instance on the same
// Redis revokes (as `caddy sms-stepup revoke` does, with the real clock and
// the store's milliseconds); a cookie minted before it stops passing here
// once the revocation refresh has passed.
func TestRevocationOnASharedRedisStopsACookie(t *testing.T) {
	r := redistest.Start(t)
	store := json.RawMessage(`{"type":"redis","url":"redis://` + r.Addr + `/0"}`)
	srv := htNew(t, nil, func(h *Handler) { h.StoreRaw = store })
	b := srv.browser("frank")
	b.stepUp()
	b.wantPass("a fresh step-up")

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	other, err := ctx.LoadModuleByID("http.handlers.sms_stepup", json.RawMessage(`{"identity":"{http.auth.user.id}","enroll":true,"signing_key":"`+htKey+`","store":`+string(store)+`}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.(*Handler).service.Revoke(t.Context(), "frank"); err != nil {
		t.Fatal(err)
	}
	srv.clock.Add(otp.MaxRevocationRefresh + time.Second)
	b.wantStepUp("the cookie after the revocation")
	b.stepUp()
	b.wantPass("a step-up after the revocation")
}

func TestRevocationRefreshIsConfigurable(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, func(h *Handler) { h.RevocationRefresh = caddy.Duration(2 * time.Second) })
	b := e.browser("alice")
	b.stepUp()
	b.wantPass("right after the step-up")
	e.clock.Add(time.Second)
	e.revokeOnStore("alice")
	b.wantPass("within revocation_refresh 2s")
	e.clock.Add(time.Second)
	b.wantStepUp("2s after the last read")
}

func TestRevocationStoreUnreadable(t *testing.T) {
	t.Parallel()
	const refresh = 10 * time.Second

	t.Run("a valid cookie still passes, with one warning per revocation_refresh", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		logs := htObserve(e)
		b := e.browser("alice")
		b.stepUp()
		e.store.notBeforeDown.Store(true)
		for range 5 {
			b.wantPass("with the revocations unreadable")
		}
		if e.store.notBefores.Load() == 0 {
			t.Fatal("no revocation read was tried: the failing store is not in use")
		}
		warnings := htEvents(logs, "revocations_unreadable")
		if len(warnings) != 1 || warnings[0].Level != zapcore.WarnLevel {
			t.Fatalf("%d revocations_unreadable warnings after five requests, want 1: %v", len(warnings), warnings)
		}
		e.clock.Add(refresh - time.Second)
		b.wantPass("with the revocations unreadable, later")
		if n := len(htEvents(logs, "revocations_unreadable")); n != 1 {
			t.Fatalf("%d warnings within revocation_refresh, want 1", n)
		}
		e.clock.Add(time.Second)
		b.wantPass("with the revocations unreadable, after revocation_refresh")
		if n := len(htEvents(logs, "revocations_unreadable")); n != 2 {
			t.Fatalf("%d warnings after revocation_refresh, want 2", n)
		}
		if n := len(htEvents(logs, "token_revoked")); n != 0 {
			t.Fatalf("%d token_revoked events with no revocation", n)
		}
	})

	t.Run("a revocation already read still refuses while the store is unreadable", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := e.browser("alice")
		b.stepUp()
		b.wantPass("right after the step-up")
		revoked := b.cookie("__Host-stepup")
		e.clock.Add(time.Second)
		e.revokeOnStore("alice")
		e.clock.Add(refresh)
		b.wantStepUp("after the revocation was read")

		e.store.notBeforeDown.Store(true)
		e.clock.Add(refresh)
		b.setCookie("__Host-stepup", revoked)
		b.wantStepUp("the revoked cookie with the revocations unreadable")
	})
}

func TestRevocationRefreshValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		refresh time.Duration
		ok      bool
	}{
		{0, true}, {time.Second, true}, {5 * time.Minute, true}, {-time.Second, false}, {5*time.Minute + time.Second, false},
	} {
		h := &Handler{IdentityOptions: IdentityOptions{Identity: "{http.auth.user.id}", Phone: htNumber}, ScopeOptions: ScopeOptions{PathPrefix: DefaultPathPrefix}, TokenOptions: TokenOptions{RevocationRefresh: caddy.Duration(tc.refresh)}}
		err := h.Validate()
		if tc.ok && err != nil {
			t.Errorf("revocation_refresh %s: %v", tc.refresh, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "revocation_refresh")) {
			t.Errorf("revocation_refresh %s: error %v, want one naming revocation_refresh", tc.refresh, err)
		}
	}
}

func htSetCookie(w interface{ Result() *http.Response }, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

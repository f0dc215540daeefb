package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// TestSecurityRule36_AKeptFormIsReplayedOnceToItsURLForItsIdentityAndSession
// presents a kept form's id (which only its browser's HttpOnly cookie
// holds) in every way it must not work: twice, by another identity, from
// another session, to another URL, to a handler of another site sharing
// the store and key, and with the sealed form changed in the store. Each
// is refused and nothing reaches the upstream.
func TestSecurityRule36_AKeptFormIsReplayedOnceToItsURLForItsIdentityAndSession(t *testing.T) {
	t.Parallel()
	withSession := func(h *Handler) { h.Session = "{http.request.cookie.app_session}" }
	// keep has alice keep a form from session s1 and step up; it returns
	// the resume page's action and body.
	keep := func(t *testing.T, e *htEnv) (*htBrowser, string, string) {
		b := e.browser("alice")
		b.setCookie("app_session", "s1")
		rpPostForm(b, &rpUpstream{}, "/settings/password", rpForm)
		action, body := rpStepUpAndResume(b)
		return b, action, body
	}
	for _, tc := range []struct {
		name   string
		status int
		try    func(t *testing.T, e *htEnv, up *rpUpstream) (*httptest.ResponseRecorder, string)
	}{
		{"twice", http.StatusConflict, func(t *testing.T, e *htEnv, up *rpUpstream) (*httptest.ResponseRecorder, string) {
			b, action, body := keep(t, e)
			rpPostForm(b, up, action, body)
			if len(up.got()) != 1 {
				t.Fatalf("the first resubmission did not reach the upstream")
			}
			up.bodies = nil
			return rpPostForm(b, up, action, body)
		}},
		{"by another identity", http.StatusForbidden, func(t *testing.T, e *htEnv, up *rpUpstream) (*httptest.ResponseRecorder, string) {
			_, action, body := keep(t, e)
			bob := e.browser("bob")
			bob.setCookie("app_session", "s1")
			bob.stepUp()
			return rpPostForm(bob, up, action, body)
		}},
		{"from another session", http.StatusForbidden, func(t *testing.T, e *htEnv, up *rpUpstream) (*httptest.ResponseRecorder, string) {
			_, action, body := keep(t, e)
			other := e.browser("alice")
			other.setCookie("app_session", "s2")
			other.stepUp()
			return rpPostForm(other, up, action, body)
		}},
		{"to another URL", http.StatusForbidden, func(t *testing.T, e *htEnv, up *rpUpstream) (*httptest.ResponseRecorder, string) {
			b, _, body := keep(t, e)
			return rpPostForm(b, up, "/settings/payout", body)
		}},
		{"to another site", http.StatusForbidden, func(t *testing.T, e *htEnv, up *rpUpstream) (*httptest.ResponseRecorder, string) {
			_, action, body := keep(t, e)
			other := htNew(t, nil, func(h *Handler) {
				withSession(h)
				h.Sites = []string{"other.example.com"}
			})
			other.h.replays = e.h.replays // the same store, and the same key
			b := other.browser("alice")
			b.setCookie("app_session", "s1")
			b.stepUp()
			return rpPostForm(b, up, action, body)
		}},
		{"tampered in the store", http.StatusForbidden, func(t *testing.T, e *htEnv, up *rpUpstream) (*httptest.ResponseRecorder, string) {
			b, action, body := keep(t, e)
			key := e.h.keys.ReplayKey(body[len("_stepup_replay="):])
			sealed, ok, err := e.h.replays.PeekReplay(t.Context(), key, e.clock.Now())
			if err != nil || !ok {
				t.Fatalf("no kept form under its key: %v", err)
			}
			sealed[len(sealed)-1] ^= 1
			if err := e.h.replays.KeepReplay(t.Context(), key, sealed, e.clock.Now(), 5*time.Minute); err != nil {
				t.Fatal(err)
			}
			return rpPostForm(b, up, action, body)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, func(h *Handler) {
				withSession(h)
				h.Sites = []string{"example.com"}
				store, _ := json.Marshal(map[string]string{"type": "memory", "name": fmt.Sprintf("rule33-%d-%d", os.Getpid(), htSeq.Add(1))})
				h.StoreRaw = store
			})
			up := &rpUpstream{}
			w, page := tc.try(t, e, up)
			if w.Code != tc.status || len(up.got()) != 0 {
				t.Fatalf("status %d, upstream got %q; want %d and nothing:\n%s", w.Code, up.got(), tc.status, page)
			}
		})
	}
}

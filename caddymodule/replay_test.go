package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// rpUpstream records every request body the next handler receives.
type rpUpstream struct {
	mu     sync.Mutex
	bodies []string
	types  []string
}

func (u *rpUpstream) got() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bodies...)
}

// rpDo sends body (of length n, or -1 for a chunked body) with
// Content-Type ctype; the next handler reads the whole body into up.
func rpDo(b *htBrowser, up *rpUpstream, method, target string, body io.Reader, n int64, ctype string, extra ...string) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	r := b.request(method, target, nil, extra...)
	if body != nil {
		r.Body, r.ContentLength = io.NopCloser(body), n
		r.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		got, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		up.mu.Lock()
		up.bodies = append(up.bodies, string(got))
		up.types = append(up.types, r.Header.Get("Content-Type"))
		up.mu.Unlock()
		_, err = io.WriteString(w, "next")
		return err
	})
	if err := b.e.h.ServeHTTP(w, r, next); err != nil {
		b.t.Fatalf("%s %s: handler error: %v", method, target, err)
	}
	b.jar.SetCookies(htBase, w.Result().Cookies())
	return w, w.Body.String()
}

// rpPostForm posts form (already encoded) from this site.
func rpPostForm(b *htBrowser, up *rpUpstream, target, form string, extra ...string) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	extra = append([]string{"Origin: https://example.com"}, extra...)
	return rpDo(b, up, http.MethodPost, target, strings.NewReader(form), int64(len(form)), formType, extra...)
}

const rpForm = "password=n%C3%A9w+s3cret%21&password2=n%C3%A9w+s3cret%21&csrf_app=app-token&password=again"

var rpResumeRE = regexp.MustCompile(`<form method="post" action="([^"]*)" id="resume">\s*<input type="hidden" name="_stepup_replay" value="([A-Za-z0-9_-]+)">`)

// rpStepUpAndResume steps the browser up after its form was kept, follows
// the verify's redirect to the resume page, and returns the form the page
// posts: its action and body.
func rpStepUpAndResume(b *htBrowser) (action, body string) {
	b.t.Helper()
	w, page := b.verify(b.send())
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/_stepup/resume?r=%2Fsettings" {
		b.t.Fatalf("verify with a kept form: status %d, Location %q, want a 303 to the resume page:\n%s", w.Code, w.Header().Get("Location"), page)
	}
	w, page = b.get("/_stepup/resume?r=%2Fsettings")
	m := rpResumeRE.FindStringSubmatch(page)
	if w.Code != http.StatusOK || m == nil {
		b.t.Fatalf("resume page: status %d, no resume form:\n%s", w.Code, page)
	}
	csp := w.Header().Get("Content-Security-Policy")
	nonce := regexp.MustCompile(`script-src 'nonce-([^']+)'`).FindStringSubmatch(csp)
	if nonce == nil || !strings.Contains(page, `<script nonce="`+nonce[1]+`">document.getElementById("resume").submit();</script>`) ||
		!strings.Contains(page, `id="continue"`) || strings.Contains(page, "s3cret") {
		b.t.Fatalf("resume page: want a nonce'd script (CSP %q), a Continue button and none of the fields:\n%s", csp, page)
	}
	return strings.ReplaceAll(m[1], "&amp;", "&"), "_stepup_replay=" + m[2]
}

// TestReplayKeepsTheFormAndSendsItOnceAfterTheStepUp is the whole of part
// 1: a form posted without a step-up is kept, the step-up page says so,
// the verify leads to the resume page, whose post reaches the upstream as
// the original body, byte for byte, once.
func TestReplayKeepsTheFormAndSendsItOnceAfterTheStepUp(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("alice")
	up := &rpUpstream{}
	w, _ := rpPostForm(b, up, "/settings/password?tab=security", rpForm)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/_stepup/?r=%2Fsettings%2Fpassword%3Ftab%3Dsecurity&n=kept" {
		t.Fatalf("form without step-up: %d, Location %q; want a 303 to the step-up page saying the form is kept", w.Code, w.Header().Get("Location"))
	}
	if b.cookie("__Host-stepup_replay") == "" || len(up.got()) != 0 {
		t.Fatalf("no replay cookie, or the upstream got %q", up.got())
	}
	for lang, text := range map[string]string{"en": "It will be sent after you confirm it", "ja": "ご本人確認のあとに送信されます"} {
		w, page := b.get("/_stepup/?r=%2Fsettings%2Fpassword%3Ftab%3Dsecurity&n=kept&lang=" + lang)
		htWant(t, "step-up page ("+lang+")", w, page, http.StatusOK, text)
	}
	action, body := rpStepUpAndResume(b)
	if action != "/settings/password?tab=security" {
		t.Fatalf("resume form posts to %q, want the original URL", action)
	}
	w, page := rpPostForm(b, up, action, body)
	if w.Code != http.StatusOK || page != "next" {
		t.Fatalf("resubmission: %d %q, want the upstream's answer", w.Code, page)
	}
	if got := up.got(); len(got) != 1 || got[0] != rpForm || up.types[0] != formType {
		t.Fatalf("upstream got %q (%q), want the original form once", got, up.types)
	}
	// The resume page's post a second time (the Back button, or a copy).
	w, page = rpPostForm(b, up, action, body)
	htWant(t, "second resubmission", w, page, http.StatusConflict, "already sent")
	if got := up.got(); len(got) != 1 {
		t.Fatalf("upstream got %d posts, want 1", len(got))
	}
	w, page = b.get("/_stepup/resume")
	htWant(t, "resume page after the form was sent", w, page, http.StatusGone, "already sent")
	// A form posted with the fresh step-up goes through untouched.
	w, _ = rpPostForm(b, up, "/settings/name", "name=Alice&_stepup_replay=x")
	if got := up.got(); w.Code != http.StatusOK || len(got) != 2 || got[1] != "name=Alice&_stepup_replay=x" {
		t.Fatalf("a form with a valid step-up: %d, upstream got %q", w.Code, got)
	}
}

// rpChunked is a body of unknown length that counts what was read of it.
type rpChunked struct {
	left, read int64
}

func (c *rpChunked) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	n = min(n, c.left)
	for i := range p[:n] {
		p[i] = 'a'
	}
	c.left -= n
	c.read += n
	return int(n), nil
}

// TestReplayDoesNotKeep: a multipart or JSON body, a form over
// replay_max_body (sent with a length or chunked, read at most one byte
// past the limit), a form from another site and any form with replay off
// are not kept, and the user is asked to send it again.
func TestReplayDoesNotKeep(t *testing.T) {
	t.Parallel()
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("password", "x")
	_ = mw.Close()
	const limit = 1024
	huge := &rpChunked{left: 1 << 30}
	for _, tc := range []struct {
		name   string
		off    bool
		body   io.Reader
		n      int64
		ctype  string
		origin string
	}{
		{name: "multipart", body: bytes.NewReader(mp.Bytes()), n: int64(mp.Len()), ctype: mw.FormDataContentType()},
		{name: "json", body: strings.NewReader(`{"password":"x"}`), n: 16, ctype: "application/json"},
		{name: "over the limit", body: strings.NewReader("a=" + strings.Repeat("b", limit-1)), n: limit + 1, ctype: formType},
		{name: "chunked over the limit", body: huge, n: -1, ctype: formType},
		{name: "from another site", body: strings.NewReader("a=b"), n: 3, ctype: formType, origin: "https://evil.example"},
		{name: "replay off", off: true, body: strings.NewReader("a=b"), n: 3, ctype: formType},
	} {
		e := htNew(t, nil, func(h *Handler) {
			h.ReplayMaxBody = limit
			if tc.off {
				h.Replay = "off"
			}
		})
		b := e.browser("alice")
		up := &rpUpstream{}
		origin := "Origin: " + cmpOr(tc.origin, "https://example.com")
		w, _ := rpDo(b, up, http.MethodPost, "/settings/password", tc.body, tc.n, tc.ctype, origin, "Referer: https://example.com/settings/password")
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/_stepup/?r=%2Fsettings%2Fpassword&n=resubmit" ||
			b.cookie("__Host-stepup_replay") != "" || len(up.got()) != 0 {
			t.Errorf("%s: %d, Location %q, replay cookie %q; want a 303 asking to send it again and nothing kept",
				tc.name, w.Code, w.Header().Get("Location"), b.cookie("__Host-stepup_replay"))
		}
	}
	if huge.read > limit+1 {
		t.Errorf("a chunked body was read for %d bytes, want at most replay_max_body+1 = %d", huge.read, limit+1)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestReplayAPISaysAFormIsWaiting: an API client's kept form is named in
// the 401, in api/state and in api/verify's answer, with how to send it.
func TestReplayAPISaysAFormIsWaiting(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("alice")
	up := &rpUpstream{}
	w, page := rpPostForm(b, up, "/settings/password", rpForm, "Accept: application/json")
	var challenge struct {
		Replay map[string]string `json:"replay"`
	}
	if err := json.Unmarshal([]byte(page), &challenge); err != nil || w.Code != http.StatusUnauthorized {
		t.Fatalf("API form without step-up: %d %s (%v)", w.Code, page, err)
	}
	want := map[string]string{"method": "POST", "url": "/settings/password", "resume": "/_stepup/resume", "content_type": formType,
		"body": "_stepup_replay=" + b.cookie("__Host-stepup_replay")}
	if !mapsEqual(challenge.Replay, want) {
		t.Fatalf("401's replay: %v, want %v", challenge.Replay, want)
	}
	w, page = b.get("/_stepup/api/state")
	var state struct {
		Replay map[string]string `json:"replay"`
	}
	if err := json.Unmarshal([]byte(page), &state); err != nil || !mapsEqual(state.Replay, want) {
		t.Fatalf("api/state: %d %s; want replay %v", w.Code, page, want)
	}
	w, page = b.verify(b.send())
	if w.Code != http.StatusSeeOther {
		t.Fatalf("verify: %d", w.Code)
	}
	w, page = b.get("/_stepup/resume", "Accept: application/json")
	if err := json.Unmarshal([]byte(page), &state); err != nil || !mapsEqual(state.Replay, want) {
		t.Fatalf("resume as JSON: %d %s; want replay %v", w.Code, page, want)
	}
	w, _ = rpPostForm(b, up, want["url"], want["body"], "Accept: application/json")
	if got := up.got(); w.Code != http.StatusOK || len(got) != 1 || got[0] != rpForm {
		t.Fatalf("API resubmission: %d, upstream got %q", w.Code, got)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestReplayResubmissionWithoutAStepUpWaitsForIt: the resume page's post
// without a valid step-up (expired meanwhile) is sent to the step-up again
// for the same kept form, which then goes through once.
func TestReplayResubmissionWithoutAStepUpWaitsForIt(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("alice")
	up := &rpUpstream{}
	rpPostForm(b, up, "/settings/password", rpForm)
	id := b.cookie("__Host-stepup_replay")
	w, _ := rpPostForm(b, up, "/settings/password", "_stepup_replay="+id)
	if w.Code != http.StatusSeeOther || !strings.HasSuffix(w.Header().Get("Location"), "&n=kept") || b.cookie("__Host-stepup_replay") != id {
		t.Fatalf("resubmission without step-up: %d, Location %q; want the step-up again for the same form", w.Code, w.Header().Get("Location"))
	}
	action, body := rpStepUpAndResume(b)
	rpPostForm(b, up, action, body)
	if got := up.got(); len(got) != 1 || got[0] != rpForm {
		t.Fatalf("upstream got %q, want the original form once", got)
	}
}

// TestReplayFailsClosedWhenTheStoreIsDown: the resume page's post when the
// store can't be read is a 503, and nothing reaches the upstream.
func TestReplayFailsClosedWhenTheStoreIsDown(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("alice")
	up := &rpUpstream{}
	rpPostForm(b, up, "/settings/password", rpForm)
	action, body := rpStepUpAndResume(b)
	e.h.replays = rpDownStore{}
	w, _ := rpPostForm(b, up, action, body)
	if w.Code != http.StatusServiceUnavailable || len(up.got()) != 0 {
		t.Fatalf("resubmission with the store down: %d, upstream got %q; want 503 and nothing", w.Code, up.got())
	}
}

type rpDownStore struct{}

func (rpDownStore) KeepReplay(context.Context, string, []byte, time.Time, time.Duration) error {
	return htErrDown
}

func (rpDownStore) PeekReplay(context.Context, string, time.Time) ([]byte, bool, error) {
	return nil, false, htErrDown
}

func (rpDownStore) TakeReplay(context.Context, string, time.Time) ([]byte, bool, error) {
	return nil, false, htErrDown
}

// TestReplayKeepsOnlyFormsTheBrowserSaysAreFromThisSite: a kept form is
// sent once the user confirms, so it is kept only when the browser says it
// was posted from this site; a client that says nothing, a sibling site
// and a Referer of another site get the old answer: post it again.
func TestReplayKeepsOnlyFormsTheBrowserSaysAreFromThisSite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		headers []string
		kept    bool
	}{
		{"Origin of this site", []string{"Origin: https://example.com"}, true},
		{"Sec-Fetch-Site same-origin, Origin null", []string{"Origin: null", "Sec-Fetch-Site: same-origin"}, true},
		{"no Origin and no Sec-Fetch-Site", nil, false},
		{"Origin null alone", []string{"Origin: null"}, false},
		{"a Referer of another site", []string{"Origin: https://example.com", "Referer: https://evil.example/x"}, false},
		{"a sibling site", []string{"Origin: https://shop.example.com", "Sec-Fetch-Site: same-site"}, false},
		{"same-site said of this host", []string{"Origin: https://example.com", "Sec-Fetch-Site: same-site"}, false},
	} {
		e := htNew(t, nil, nil)
		b := e.browser("alice")
		up := &rpUpstream{}
		w, _ := rpDo(b, up, http.MethodPost, "/settings/password", strings.NewReader("a=b"), 3, formType, tc.headers...)
		kept := b.cookie("__Host-stepup_replay") != ""
		if w.Code != http.StatusSeeOther || kept != tc.kept || len(up.got()) != 0 {
			t.Errorf("%s: %d, Location %q, kept %v; want kept %v and nothing sent", tc.name, w.Code, w.Header().Get("Location"), kept, tc.kept)
		}
	}
}

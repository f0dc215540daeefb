package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// frRender renders the send page with data for a visit of browser b in
// lang going back to ret, framed or through the template, and returns the
// status, the headers and the body with the page's CSP nonce replaced by
// NONCE (it is new for every page).
func frRender(t *testing.T, e *htEnv, b *htBrowser, framed bool, lang, ret string, status int, data pages.Data) (int, http.Header, string) {
	t.Helper()
	return frRenderPage(t, e, b, framed, pages.Send, lang, ret, status, data)
}

// frRenderPage is frRender for page.
func frRenderPage(t *testing.T, e *htEnv, b *htBrowser, framed bool, page, lang, ret string, status int, data pages.Data) (int, http.Header, string) {
	t.Helper()
	r := b.request(http.MethodGet, "/_stepup/?lang="+lang, nil)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	w := httptest.NewRecorder()
	v := e.h.newVisit(w, r, repl, b.user)
	v.ret = ret
	frames := e.h.frames
	if !framed {
		e.h.frames = nil
		defer func() { e.h.frames = frames }()
	}
	if err := e.h.render(v, status, page, data); err != nil {
		t.Fatal(err)
	}
	nonce := frNonce.FindStringSubmatch(w.Header().Get("Content-Security-Policy"))
	if nonce == nil {
		t.Fatalf("no nonce in the CSP %q", w.Header().Get("Content-Security-Policy"))
	}
	hdr := w.Header().Clone()
	hdr.Set("Content-Security-Policy", strings.ReplaceAll(hdr.Get("Content-Security-Policy"), nonce[1], "NONCE"))
	return w.Code, hdr, strings.ReplaceAll(w.Body.String(), nonce[1], "NONCE")
}

var frNonce = regexp.MustCompile(`'nonce-([^']+)'`)

// The send page written from a frame is the template's, byte for byte,
// headers too, for every language, every refusal's message, with and
// without a number, a change link, an action, a brand, and return paths
// and messages that escaping changes.
func TestFramedSendPageIsTheTemplates(t *testing.T) {
	for _, brand := range []bool{false, true} {
		e := rtNew(t, func(h *Handler) {
			h.Enroll = true
			if brand {
				h.Brand = &BrandConfig{Name: "Ex & <Co>", Color: "#123abc", LogoURL: "/logo.svg?a=1&b=2"}
			}
		})
		b := e.browser("alice")
		b.csrf() // the nonce cookie, so both renders give the same token
		variants := 0
		for _, lang := range []string{"en", "ja"} {
			messages := []pages.Data{
				{Message: pages.Msg(lang, "rate_limited", "{m}", "60"), Key: "rate_limited", RetryIn: 3600},
				{Message: pages.Msg(lang, "cooldown", "{s}", "29"), Key: "cooldown", RetryIn: 29},
				{Message: pages.Msg(lang, "code_dead"), Key: "code_dead"},
				{Message: pages.Msg(lang, "no_challenge"), Key: "no_challenge"},
				{Message: pages.Msg(lang, "malformed_code", "{n}", "6"), Key: "malformed_code"},
				{Message: "<script>&'\"+\x00 \xff", Status: "notice"},
				{}, // the page as a step-up first shows it
			}
			for _, msg := range messages {
				for _, masked := range []string{"", "+81 90-****-5678", "<b>&'\"+"} {
					for _, canChange := range []bool{false, true} {
						for _, ret := range []string{"/", "/settings", "/account/payout?x=1&y=<'\">+%20 é", "/account/payout/\"><script>"} {
							data := msg
							data.Masked, data.CanChange = masked, canChange
							wantCode, wantHdr, want := frRender(t, e, b, false, lang, ret, 429, data)
							gotCode, gotHdr, got := frRender(t, e, b, true, lang, ret, 429, data)
							if gotCode != wantCode || got != want {
								t.Fatalf("lang %s, %+v, return %q: the framed page (%d) is not the template's (%d):\n%s\nwant:\n%s", lang, data, ret, gotCode, wantCode, got, want)
							}
							for k := range wantHdr {
								if gotHdr.Get(k) != wantHdr.Get(k) {
									t.Fatalf("lang %s, return %q: header %s %q, the template's %q", lang, ret, k, gotHdr.Get(k), wantHdr.Get(k))
								}
							}
							variants++
						}
					}
				}
			}
		}
		e.h.frames.mu.Lock()
		built := len(e.h.frames.frames)
		for k, f := range e.h.frames.frames {
			if f == nil {
				t.Errorf("variant %+v was not framed: its page came from the template", k)
			}
		}
		e.h.frames.mu.Unlock()
		// 2 languages x (2 statuses + no message) x 2 actions (none, payout) x masked or not x change link or not.
		if built != 48 {
			t.Errorf("%d frames built over %d pages, want 48", built, variants)
		}
	}
}

// A page that is not a plain refusal (a CAPTCHA, the enrolment's number,
// the operator's own templates) is the template's: no frame is used.
func TestFramesOnlyPlainRefusals(t *testing.T) {
	for _, data := range []pages.Data{
		{Message: "m", Enrolling: true, Formatted: "+81 90-1234-5678"},
		{Message: "m", Captcha: &pages.Captcha{Kind: "pow", Challenge: "c", Difficulty: 1, ImageURL: "/i"}},
		{Message: "m", CanCall: true},
	} {
		if framable(pages.Send, data) {
			t.Errorf("%+v is framed", data)
		}
	}
	if !framable(pages.Send, pages.Data{Message: "m", Key: "k", RetryIn: 3, Masked: "x", CanChange: true, Status: "notice"}) {
		t.Error("a refusal's data is not framed")
	}
	if framable(pages.Code, pages.Data{Message: "m"}) || framable(pages.Error, pages.Data{Message: "m"}) {
		t.Error("a code page with no number, or an error page, is framed")
	}
	for _, own := range []bool{false, true} {
		e := htNew(t, nil, func(h *Handler) {
			if own {
				h.Templates = t.TempDir() // the operator's directory, with no page replaced
			}
		})
		b := e.browser("alice")
		b.csrf() // the send page as first shown: one frame
		frRender(t, e, b, true, "en", "/", 429, pages.Data{Message: "m"})
		want := 2
		if own {
			want = 0
		}
		if n := len(e.h.frames.frames); n != want {
			t.Errorf("own templates %v: %d frames after the page and a refusal, want %d", own, n, want)
		}
	}
}

// The code page written from a frame is the template's, byte for byte,
// for every language, a wrong code's and a cooldown's message, with and
// without a wait for a resend, a call button, a delivery report.
func TestFramedCodePageIsTheTemplates(t *testing.T) {
	e := rtNew(t, nil)
	b := e.browser("alice")
	b.csrf()
	for _, lang := range []string{"en", "ja"} {
		for _, msg := range []pages.Data{
			{Message: pages.Msg(lang, "wrong_code", "{n}", "3"), Key: "wrong_code", Remaining: 3},
			{Message: pages.Msg(lang, "cooldown", "{s}", "29"), Key: "cooldown"},
			{Message: "<b>&'\"+\x00", Status: "notice"},
			{}, // the code page as a send leaves it
		} {
			for _, retryIn := range []int{0, 7, 1800} {
				for _, canCall := range []bool{false, true} {
					for _, delivery := range [][2]string{{}, {pages.Msg(lang, "delivery_delivered"), "notice"}, {pages.Msg(lang, "delivery_failed"), "error"}} {
						for _, masked := range []string{"+81 90-****-5678", "<i>&'\"+ -"} {
							for _, ret := range []string{"/settings", "/account/payout?x=1&y=<'\">+%20 é"} {
								data := msg
								data.RetryIn, data.CanCall, data.Delivery, data.DeliveryStatus, data.Masked = retryIn, canCall, delivery[0], delivery[1], masked
								wantCode, _, want := frRenderPage(t, e, b, false, pages.Code, lang, ret, 422, data)
								gotCode, _, got := frRenderPage(t, e, b, true, pages.Code, lang, ret, 422, data)
								if gotCode != wantCode || got != want {
									t.Fatalf("lang %s, %+v, return %q: the framed code page (%d) is not the template's (%d):\n%s\nwant:\n%s", lang, data, ret, gotCode, wantCode, got, want)
								}
							}
						}
					}
				}
			}
		}
	}
	e.h.frames.mu.Lock()
	defer e.h.frames.mu.Unlock()
	for k, f := range e.h.frames.frames {
		if f == nil {
			t.Errorf("variant %+v was not framed: its page came from the template", k)
		}
	}
	if len(e.h.frames.frames) == 0 {
		t.Error("no code page was framed")
	}
}

package caddymodule

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSecurityRule33_CarrierCheck: a number the carrier check can't vouch
// for is never enrolled, whatever the carrier database answers or fails to;
// a number whose carrier refuses it gets no code; and an answer kept in the
// store opens only for the number it was given for.
func TestSecurityRule33_CarrierCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"a 5xx refuses the new number", http.StatusBadGateway, `{}`},
		{"an answer that is not JSON refuses the new number", http.StatusOK, `<html>ok</html>`},
		{"an answer without the line type refuses the new number", http.StatusOK, `{"valid":true,"line_type_intelligence":null}`},
		{"a line type no one knows refuses the new number", http.StatusOK, `{"valid":true,"line_type_intelligence":{"type":"satellite"}}`},
		{"an error code refuses the new number", http.StatusOK, `{"valid":true,"line_type_intelligence":{"type":"mobile","error_code":60601}}`},
		{"a redirect is not followed and refuses the new number", http.StatusFound, ``},
		{"a VoIP answer refuses the new number", http.StatusOK, `{"valid":true,"line_type_intelligence":{"type":"nonFixedVoip"}}`},
		{"a premium answer refuses the new number", http.StatusOK, `{"valid":true,"line_type_intelligence":{"type":"premium"}}`},
		{"an invalid number is refused", http.StatusOK, `{"valid":false,"line_type_intelligence":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status == http.StatusFound {
					http.Redirect(w, r, "/v2/PhoneNumbers/elsewhere", http.StatusFound)
					return
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			e := lkEnv(t, &LookupConfig{Provider: "twilio", AccountSID: lkSID, AuthToken: lkToken, BaseURL: srv.URL})
			b := e.browser("sec33")
			resp, body := enPost(b, "/_stepup/enroll", url.Values{"phone": {lkMobile}})
			if resp.StatusCode == http.StatusSeeOther || b.cookie("__Host-stepup_enroll") != "" {
				t.Fatalf("the number was taken for enrolment: %d\n%s", resp.StatusCode, body)
			}
			if resp, _ := enPost(b, "/_stepup/send", url.Values{}); resp.StatusCode == http.StatusSeeOther {
				t.Fatal("a send followed")
			}
			if _, n := enCodeTo(t, e, lkMobile); n != 0 {
				t.Fatal("a code went out")
			}
		})
	}
	t.Run("an answer copied onto another number's key in the store does not open", func(t *testing.T) {
		t.Parallel()
		f := lkNewFake(t)
		e := lkEnv(t, lkTwilio(f))
		if resp, body := enPost(e.browser("sec33-alice"), "/_stepup/enroll", url.Values{"phone": {lkMobile}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enroll: %d\n%s", resp.StatusCode, body)
		}
		cache, err := lookupCacheOf(e.store.Store)
		if err != nil {
			t.Fatal(err)
		}
		ctx, now := context.Background(), e.clock.Now()
		scope := "carrier\x00twilio\x00" + lkSID
		sealed, ok, err := cache.CachedLookup(ctx, e.h.keys.LookupKey(scope, lkMobile), now)
		if err != nil || !ok {
			t.Fatalf("the mobile number's answer is not where the test looks: %v %v", ok, err)
		}
		if strings.Contains(string(sealed), "mobile") {
			t.Fatal("the answer is kept in clear")
		}
		if err := cache.CacheLookup(ctx, e.h.keys.LookupKey(scope, lkVoIP), sealed, now, time.Hour); err != nil {
			t.Fatal(err)
		}
		resp, body := enPost(e.browser("sec33-mallory"), "/_stepup/enroll", url.Values{"phone": {lkVoIP}})
		if resp.StatusCode != http.StatusUnprocessableEntity || f.requests() != 2 {
			t.Fatalf("the copied answer was believed: %d after %d lookups\n%s", resp.StatusCode, f.requests(), body)
		}
	})
}

package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func TestLookupCaddyfile(t *testing.T) {
	t.Parallel()
	h, err := cfParse(cfWith("lookup twilio {", "\taccount_sid "+lkSID, "\tauth_token {env.TWILIO_AUTH_TOKEN}", "\talways", "\tcache 240h", "}"))
	if err != nil {
		t.Fatal(err)
	}
	want := LookupConfig{Provider: "twilio", AccountSID: lkSID, AuthToken: "{env.TWILIO_AUTH_TOKEN}", Always: true, Cache: caddy.Duration(240 * time.Hour)}
	if h.Lookup == nil || *h.Lookup != want {
		t.Fatalf("lookup twilio: %+v", h.Lookup)
	}
	h, err = cfParse(cfWith("lookup http {", "\turl https://numbers.internal/carrier", "\tfield line.type", "\theader X-Api-Key {env.K}", "\ttimeout 3s", "}"))
	if err != nil {
		t.Fatal(err)
	}
	want = LookupConfig{Provider: "http", URL: "https://numbers.internal/carrier", Field: "line.type", HeaderName: "X-Api-Key", HeaderValue: "{env.K}", Timeout: caddy.Duration(3 * time.Second)}
	if h.Lookup == nil || *h.Lookup != want {
		t.Fatalf("lookup http: %+v", h.Lookup)
	}
	h, err = cfParse(cfWith("lookup http {", "\turl https://numbers.internal/carrier", "\tfield t", "\tmax_per_identity 3", "\tmax_per_ip 0", "}"))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Lookup.limits(); got != (otp.CarrierLimits{PerIdentity: 3, PerIP: 0, Daily: otp.DefaultCarrierLimits().Daily}) {
		t.Fatalf("lookup caps: %+v", got)
	}
}

func TestLookupCaddyfileErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lines []string
		at    string
		words string
	}{
		{[]string{"lookup carrierdb {", "}"}, "Testfile:4", `lookup "carrierdb": expected twilio or http`},
		{[]string{"lookup"}, "Testfile:4", "lookup: expected twilio or http"},
		{[]string{"lookup twilio {", "\taccount_sid " + lkSID, "}"}, "Testfile:4", "expected account_sid and auth_token"},
		{[]string{"lookup http {", "\turl https://x.example/c", "}"}, "Testfile:4", "expected url and field"},
		{[]string{"lookup http {", "\turl https://x.example/c", "\tfield t", "\taccount_sid " + lkSID, "}"}, "Testfile:4", "account_sid, auth_token and base_url are for lookup twilio"},
		{[]string{"lookup twilio {", "\taccount_sid " + lkSID, "\tauth_token t", "\tcache 10m", "}"}, "Testfile:7", "lookup cache 10m0s: expected a duration from 1h to 2160h"},
		{[]string{"lookup twilio {", "\taccount_sid " + lkSID, "\tauth_token t", "\ttimeout 1m", "}"}, "Testfile:7", "expected a duration from 1s to 30s"},
		{[]string{"lookup http {", "\theader X-Api-Key", "}"}, "Testfile:5", "expected a name and a value"},
		{[]string{"lookup http {", "\tcarrier x", "}"}, "Testfile:5", `unknown lookup option "carrier"`},
		{[]string{"lookup twilio {", "\taccount_sid " + lkSID, "\tauth_token t", "\tmax_per_ip -1", "}"}, "Testfile:7", `lookup max_per_ip "-1": expected a whole number, 0 for no cap`},
		{[]string{"lookup twilio {", "\taccount_sid " + lkSID, "\tauth_token t", "\tdaily_budget lots", "}"}, "Testfile:7", `lookup daily_budget "lots"`},
	} {
		_, err := cfParse(cfWith(tc.lines...))
		if err == nil || !strings.Contains(err.Error(), tc.words) || !strings.Contains(err.Error(), tc.at) {
			t.Errorf("%q: %v, want %q at %s", tc.lines, err, tc.words, tc.at)
		}
	}
}

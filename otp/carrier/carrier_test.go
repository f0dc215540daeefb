package carrier_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/carrier"
)

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "tok-secret"
	us    = "+12015550123"
)

// twilioFake answers as Lookup v2 does, after checking the documented
// request: GET /v2/PhoneNumbers/{E164}?Fields=line_type_intelligence with
// HTTP basic auth.
func twilioFake(t *testing.T, status int, answer string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		switch {
		case r.Method != http.MethodGet || r.URL.Path != "/v2/PhoneNumbers/"+us:
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		case r.URL.Query().Get("Fields") != "line_type_intelligence" || len(r.URL.Query()) != 1:
			t.Errorf("query %q", r.URL.RawQuery)
		case !ok || user != sid || pass != token:
			t.Errorf("basic auth %q %q %v", user, pass, ok)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func lti(typ string) string {
	return `{"calling_country_code":"1","country_code":"US","phone_number":"` + us + `","valid":true,
	"line_type_intelligence":{"carrier_name":"Bandwidth","error_code":null,"mobile_country_code":"313","mobile_network_code":"981","type":` + typ + `}}`
}

func TestTwilioLookup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		answer string
		want   string
		fails  bool
	}{
		{"mobile", 200, lti(`"mobile"`), "mobile", false},
		{"non-fixed VoIP", 200, lti(`"nonFixedVoip"`), "voip", false},
		{"fixed VoIP", 200, lti(`"fixedVoip"`), "voip", false},
		{"landline", 200, lti(`"landline"`), "fixed_line", false},
		{"toll free", 200, lti(`"tollFree"`), "toll_free", false},
		{"no type", 200, lti(`null`), "unknown", false},
		{"invalid number", 200, `{"valid":false,"line_type_intelligence":null}`, "invalid", false},
		{"Canada without approval", 200, `{"valid":true,"line_type_intelligence":{"error_code":60601,"type":null}}`, "", true},
		{"a type no one knows", 200, lti(`"satellite"`), "", true},
		{"server error", 500, `{"code":20500}`, "", true},
		{"wrong credentials", 401, `{"code":20003}`, "", true},
		{"not JSON", 200, `<html>`, "", true},
	} {
		srv := twilioFake(t, tc.status, tc.answer)
		l, err := carrier.NewTwilio(carrier.TwilioConfig{AccountSID: sid, AuthToken: token, BaseURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.LookUpCarrier(context.Background(), us)
		if tc.fails {
			if !errors.Is(err, otp.ErrCarrierLookup) {
				t.Errorf("%s: %+v %v, want a failed lookup", tc.name, a, err)
			} else if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "2015550123") {
				t.Errorf("%s: the error tells the token or the number: %v", tc.name, err)
			}
			continue
		}
		if err != nil || a.Type != tc.want {
			t.Errorf("%s: %+v %v, want %s", tc.name, a, err, tc.want)
		}
	}
}

func TestTwilioLookupConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []carrier.TwilioConfig{
		{AccountSID: "xx", AuthToken: token},
		{AccountSID: sid},
		{AccountSID: sid, AuthToken: token, BaseURL: "http://lookups.example.com"},
	} {
		if _, err := carrier.NewTwilio(cfg); err == nil {
			t.Errorf("%+v was accepted", cfg)
		}
	}
}

// operatorFake is an operator's lookup service: it checks the documented
// request (POST of {"number": e164}, the secret header) and answers body.
func operatorFake(t *testing.T, status int, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]string
		err := json.NewDecoder(r.Body).Decode(&req)
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/lookup" || r.URL.RawQuery != "":
			t.Errorf("request %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
		case err != nil || len(req) != 1 || req["number"] != us:
			t.Errorf("body %v %v", req, err)
		case r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Api-Key") != "s3cret":
			t.Errorf("headers %v", r.Header)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPLookup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"line":{"type":"mobile"}}`, "mobile"},
		{200, `{"line":{"type":"nonFixedVoip"}}`, "voip"},
		{200, `{"line":{"type":"voip"}}`, "voip"},
		{200, `{"line":{"type":"unknown"}}`, "unknown"},
		{200, `{"line":{}}`, ""},
		{200, `{"line":{"type":3}}`, ""},
		{200, `{"line":{"type":"cb radio"}}`, ""},
		{503, `{"line":{"type":"mobile"}}`, ""},
		{200, `not json`, ""},
	} {
		srv := operatorFake(t, tc.status, tc.body)
		l, err := carrier.NewHTTP(carrier.HTTPConfig{URL: srv.URL + "/lookup", Field: "line.type", HeaderName: "X-Api-Key", HeaderValue: "s3cret"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.LookUpCarrier(context.Background(), us)
		if tc.want == "" {
			if !errors.Is(err, otp.ErrCarrierLookup) {
				t.Errorf("%d %s: %+v %v, want a failed lookup", tc.status, tc.body, a, err)
			}
			continue
		}
		if err != nil || a.Type != tc.want {
			t.Errorf("%d %s: %+v %v, want %s", tc.status, tc.body, a, err, tc.want)
		}
	}
}

func TestHTTPLookupConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []carrier.HTTPConfig{
		{URL: "http://lookup.example.com/x", Field: "type"},
		{URL: "https://lookup.example.com/x", Field: "a..b"},
		{URL: "https://lookup.example.com/x", Field: "type", HeaderName: "X-Key"},
		{URL: "ftp://lookup.example.com/x", Field: "type"},
	} {
		if _, err := carrier.NewHTTP(cfg); err == nil {
			t.Errorf("%+v was accepted", cfg)
		}
	}
}

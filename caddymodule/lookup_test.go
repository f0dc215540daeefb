package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const (
	lkSID    = "AC0123456789abcdef0123456789abcdef"
	lkToken  = "lookup-test-token"
	lkMobile = "+12015550123"
	lkVoIP   = "+12015550124"
	lkOther  = "+12015550125"
)

// lkFake is a carrier database: Twilio Lookup v2 or an operator's
// service, by how it is asked. It checks each request against the
// documented shape, answers the line type it holds for the number, or 500
// while failing, and counts the requests.
type lkFake struct {
	t       *testing.T
	mu      sync.Mutex
	types   map[string]string
	failing bool
	asked   []string
	srv     *httptest.Server
}

func lkNewFake(t *testing.T) *lkFake {
	f := &lkFake{t: t, types: map[string]string{lkMobile: "mobile", lkVoIP: "nonFixedVoip", lkOther: "mobile"}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *lkFake) serve(w http.ResponseWriter, r *http.Request) {
	number := ""
	if r.Method == http.MethodGet {
		// Twilio Lookup v2.
		user, pass, ok := r.BasicAuth()
		number, _ = strings.CutPrefix(r.URL.Path, "/v2/PhoneNumbers/")
		if number == r.URL.Path || r.URL.RawQuery != "Fields=line_type_intelligence" || !ok || user != lkSID || pass != lkToken {
			f.t.Errorf("not a Lookup v2 request: %s %s?%s auth %q", r.Method, r.URL.Path, r.URL.RawQuery, user)
		}
	} else {
		// The operator's service: POST {"number": ...} with the secret.
		var body map[string]string
		err := json.NewDecoder(r.Body).Decode(&body)
		number = body["number"]
		if r.URL.Path != "/carrier" || err != nil || len(body) != 1 || r.Header.Get("X-Api-Key") != "lookup-secret" {
			f.t.Errorf("not the documented operator request: %s %s %v %v", r.Method, r.URL.Path, body, r.Header)
		}
	}
	f.mu.Lock()
	f.asked = append(f.asked, number)
	typ, failing := f.types[number], f.failing
	f.mu.Unlock()
	if failing {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodGet {
		io.WriteString(w, `{"phone_number":"`+number+`","valid":true,"line_type_intelligence":{"carrier_name":"Test Wireless","error_code":null,"type":"`+typ+`"}}`)
		return
	}
	io.WriteString(w, `{"line":{"type":"`+typ+`"}}`)
}

func (f *lkFake) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

func (f *lkFake) fail(on bool) {
	f.mu.Lock()
	f.failing = on
	f.mu.Unlock()
}

// lkEnv is a handler whose users enrol numbers of Japan and the US, with
// the carrier lookup lookup.
func lkEnv(t *testing.T, lookup *LookupConfig) *htEnv {
	return htNew(t, nil, func(h *Handler) {
		h.Phone, h.Enroll, h.AllowCountries, h.Lookup = "", true, []string{"JP", "US"}, lookup
	})
}

func lkTwilio(f *lkFake) *LookupConfig {
	return &LookupConfig{Provider: "twilio", AccountSID: lkSID, AuthToken: lkToken, BaseURL: f.srv.URL}
}

func lkHTTP(f *lkFake) *LookupConfig {
	return &LookupConfig{Provider: "http", URL: f.srv.URL + "/carrier", Field: "line.type", HeaderName: "X-Api-Key", HeaderValue: "lookup-secret"}
}

func TestLookupFlows(t *testing.T) {
	t.Parallel()
	for _, provider := range []string{"twilio", "http"} {
		// One after the other: they count cache hits on the process's
		// metrics, which no other test touches.
		t.Run(provider, func(t *testing.T) {
			f := lkNewFake(t)
			cfg := lkTwilio(f)
			if provider == "http" {
				cfg = lkHTTP(f)
			}
			lkCheckFlows(t, f, lkEnv(t, cfg))
		})
	}
}

func lkCheckFlows(t *testing.T, f *lkFake, e *htEnv) {
	t.Run("a mobile number is looked up once, at enrolment, and its codes go out on the cached answer", func(t *testing.T) {
		alice := e.browser("lk-alice")
		if resp, body := enPost(alice, "/_stepup/enroll", url.Values{"phone": {"+1 201-555-0123"}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enroll: %d\n%s", resp.StatusCode, body)
		}
		if n := f.requests(); n != 1 {
			t.Fatalf("%d lookups at enrolment, want 1", n)
		}
		cachedBefore := testutil.ToFloat64(lookupMetrics.lookups.WithLabelValues("mobile", "cached"))
		resp, body := enPost(alice, "/_stepup/send", url.Values{})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", resp.StatusCode, body)
		}
		code, n := enCodeTo(t, e, lkMobile)
		if n != 1 || f.requests() != 1 {
			t.Fatalf("%d codes, %d lookups: want 1 code and no second lookup", n, f.requests())
		}
		if got := testutil.ToFloat64(lookupMetrics.lookups.WithLabelValues("mobile", "cached")); got != cachedBefore+1 {
			t.Errorf("cache hits counted %v, want %v", got, cachedBefore+1)
		}
		if resp, body := enPost(alice, "/_stepup/verify", url.Values{"code": {code}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("verify: %d\n%s", resp.StatusCode, body)
		}
	})
	t.Run("a VoIP number is refused at enrolment and gets no code", func(t *testing.T) {
		bob := e.browser("lk-bob")
		resp, body := enPost(bob, "/_stepup/enroll", url.Values{"phone": {lkVoIP}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Use your own mobile phone number") {
			t.Fatalf("VoIP number: %d\n%s", resp.StatusCode, body)
		}
		if bob.cookie("__Host-stepup_enroll") != "" {
			t.Fatal("a refused number was kept for enrolment")
		}
		if _, n := enCodeTo(t, e, lkVoIP); n != 0 {
			t.Fatal("a code went to a VoIP number")
		}
	})
	t.Run("a Japanese mobile number is classified by the number plan, without a lookup", func(t *testing.T) {
		before := f.requests()
		if resp, body := enEnrol(t, e, e.browser("lk-jiro"), "090-3333-4444", "+819033334444"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enrol: %d\n%s", resp.StatusCode, body)
		}
		if f.requests() != before {
			t.Fatal("a number the metadata classifies was looked up")
		}
	})
	t.Run("a failing lookup refuses a new number, in English and Japanese", func(t *testing.T) {
		f.fail(true)
		defer f.fail(false)
		carol := e.browser("lk-carol")
		resp, body := enPost(carol, "/_stepup/enroll", url.Values{"phone": {lkOther}})
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "We can't check this number right now") {
			t.Fatalf("lookup down: %d\n%s", resp.StatusCode, body)
		}
		if carol.cookie("__Host-stepup_enroll") != "" {
			t.Fatal("a number no one could check was kept for enrolment")
		}
		resp, body = enPost(carol, "/_stepup/enroll", url.Values{"phone": {lkOther}, "lang": {"ja"}})
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "現在この番号を確認できません") {
			t.Fatalf("lookup down, ja: %d\n%s", resp.StatusCode, body)
		}
	})
	t.Run("a failing lookup does not keep its code from a bound number", func(t *testing.T) {
		core, logs := observer.New(zap.InfoLevel)
		e.h.logger = zap.New(core)
		// The cached answer expires, and the database is down.
		e.clock.Add(31 * 24 * time.Hour)
		f.fail(true)
		defer f.fail(false)
		before := f.requests()
		alice := e.browser("lk-alice")
		if w, body := alice.postSend(); w.Code != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", w.Code, body)
		}
		if _, n := enCodeTo(t, e, lkMobile); n != 2 || f.requests() != before+1 {
			t.Fatalf("%d codes to the bound number, %d lookups: want a second code after one lookup", n, f.requests()-before)
		}
		failed := logs.FilterField(zap.String("event", "lookup_failed")).All()
		if len(failed) != 1 || strings.Contains(failed[0].ContextMap()["phone"].(string), "5550123") {
			t.Fatalf("lookup_failed audited %d times: %v", len(failed), failed)
		}
	})
	t.Run("a bound number its carrier now calls VoIP gets no code, and the user is sent to an operator", func(t *testing.T) {
		f.mu.Lock()
		f.types[lkMobile] = "nonFixedVoip"
		f.mu.Unlock()
		alice := e.browser("lk-alice")
		w, body := alice.postSend()
		if w.Code != http.StatusForbidden || !strings.Contains(body, "Contact your administrator") {
			t.Fatalf("send to a number ported to VoIP: %d\n%s", w.Code, body)
		}
		if _, n := enCodeTo(t, e, lkMobile); n != 2 {
			t.Fatalf("%d codes: a code went to a number its carrier calls VoIP", n)
		}
	})
}

func TestLookupJSONClients(t *testing.T) {
	t.Parallel()
	f := lkNewFake(t)
	e := lkEnv(t, lkTwilio(f))
	b := e.browser("lk-json")
	csrf := jeState(t, b)["csrf"].(string)
	status, out, _ := apCall(b, "/_stepup/api/enroll", csrf, `{"phone":"`+lkVoIP+`","r":"/settings"}`)
	if status != http.StatusUnprocessableEntity || out["error"] != "phone_refused" {
		t.Fatalf("a VoIP number: %d %v", status, out)
	}
	f.fail(true)
	status, out, _ = apCall(b, "/_stepup/api/enroll", csrf, `{"phone":"`+lkMobile+`","r":"/settings"}`)
	if status != http.StatusServiceUnavailable || out["error"] != "lookup_unavailable" || out["message"] == "" {
		t.Fatalf("lookup down: %d %v", status, out)
	}
	jeWantNoEnrolment(t, e, b, lkMobile)
}

func TestLookupProvisionRefusesWhatCantBeUsed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lookup LookupConfig
		want   string
	}{
		{LookupConfig{Provider: "twilio", AccountSID: lkSID, AuthToken: lkToken, BaseURL: "http://lookups.example.com"}, "expected https"},
		{LookupConfig{Provider: "twilio", AccountSID: lkSID, AuthToken: "{env.STEPUP_LOOKUP_TEST_UNSET}"}, "lookup auth_token"},
		{LookupConfig{Provider: "twilio", AccountSID: "XX01", AuthToken: lkToken}, "must start with AC"},
		{LookupConfig{Provider: "http", URL: "https://numbers.example.com/c", Field: "a..b"}, "expected keys joined by dots"},
	} {
		h := new(Handler)
		h.Identity, h.Enroll, h.SigningKey, h.Lookup = "{http.auth.user.id}", true, htKey, &tc.lookup
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.lookup, err, tc.want)
		}
	}
}

// Each lookup costs money, so an identity that enrols one fresh number
// after another is capped before the carrier database is asked again,
// while a cached answer still lets its enrolment through.
func TestLookupCapsPaidLookupsPerIdentity(t *testing.T) {
	t.Parallel()
	f := lkNewFake(t)
	cfg := lkTwilio(f)
	one := 1
	cfg.MaxPerIdentity = &one
	e := lkEnv(t, cfg)
	mallory := e.browser("lk-mallory")
	if resp, body := enPost(mallory, "/_stepup/enroll", url.Values{"phone": {lkMobile}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first enrolment: %d\n%s", resp.StatusCode, body)
	}
	resp, body := enPost(mallory, "/_stepup/enroll", url.Values{"phone": {lkOther}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "lookup_unavailable") && !strings.Contains(body, "can't check") {
		t.Fatalf("a second new number within the hour: %d, Retry-After %q\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := f.requests(); n != 1 {
		t.Fatalf("the carrier database was asked %d times, want 1", n)
	}
	// Another identity has its own cap.
	if resp, body := enPost(e.browser("lk-trent"), "/_stepup/enroll", url.Values{"phone": {lkOther}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another identity: %d\n%s", resp.StatusCode, body)
	}
}

package twilio_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/twilio"
)

func TestTwilioHealthReadsTheAccount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		answer string
		err    string
	}{
		{"an active account is healthy", http.StatusOK, `{"sid":"` + accountSID + `","status":"active","friendly_name":"x"}`, ""},
		{"a suspended account is down", http.StatusOK, `{"sid":"` + accountSID + `","status":"suspended"}`, "the account is suspended"},
		{"refused credentials are down and say so", http.StatusUnauthorized, `{"code":20003,"message":"Authenticate","status":401}`, "refused the account SID and auth token (HTTP 401: Authenticate, code 20003)"},
		{"a server error is down", http.StatusServiceUnavailable, `{"code":20503,"message":"Service unavailable"}`, "reading the account failed (server_error"},
		{"an answer with no status is not Twilio's", http.StatusOK, `<html>hello</html>`, "has no status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan seen, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := seen{method: r.Method, path: r.URL.Path}
				s.user, s.pass, s.basicAuth = r.BasicAuth()
				body, _ := io.ReadAll(r.Body)
				if len(body) != 0 || r.URL.RawQuery != "" {
					t.Errorf("the health check sent a body %q or query %q", body, r.URL.RawQuery)
				}
				got <- s
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer)
			}))
			defer srv.Close()
			g := newGateway(t, twilio.Config{BaseURL: srv.URL})
			err := g.Health(t.Context())
			if tc.err == "" && err != nil {
				t.Fatalf("got %v, want healthy", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), authToken) {
				t.Fatalf("the error %q shows the auth token", err)
			}
			s := <-got
			if s.method != http.MethodGet || s.path != "/2010-04-01/Accounts/"+accountSID+".json" {
				t.Fatalf("request %s %s, want GET /2010-04-01/Accounts/%s.json", s.method, s.path, accountSID)
			}
			if !s.basicAuth || s.user != accountSID || s.pass != authToken {
				t.Fatalf("basic auth %q:%q (%v), want the account SID and auth token", s.user, s.pass, s.basicAuth)
			}
		})
	}
}

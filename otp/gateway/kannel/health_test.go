package kannel_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/kanneltest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/kannel"
)

func TestKannelHealthAsksWithoutAReceiver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		answer string
		err    string
	}{
		{"Kannel's refusal of a missing receiver means up", http.StatusBadRequest, "Missing receiver number, rejected", ""},
		{"a refused password means down, and says so", http.StatusForbidden, "Authorization failed for sendsms", "refused the username and password"},
		{"another 400 is not Kannel's answer", http.StatusBadRequest, "Bad Request", "not Kannel's answer"},
		{"a success is not Kannel's answer either", http.StatusOK, "<html>welcome</html>", "not Kannel's answer"},
		{"an answer repeating the password is withheld", http.StatusInternalServerError, "error for password=" + password, "withheld"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan *http.Request, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer)
			}))
			defer srv.Close()
			g := newGateway(t, srv.URL+"/cgi-bin/sendsms", true, time.Second)
			err := g.Health(t.Context())
			if tc.err == "" && err != nil {
				t.Fatalf("got %v, want healthy", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Fatalf("the error %q shows the password", err)
			}
			r := <-got
			want := url.Values{"username": {"stepup"}, "password": {password}}
			if r.Method != http.MethodGet || r.URL.Path != "/cgi-bin/sendsms" || r.URL.Query().Encode() != want.Encode() {
				t.Fatalf("request %s %s?%s, want GET /cgi-bin/sendsms with the credentials and nothing else (no to, no text)",
					r.Method, r.URL.Path, r.URL.RawQuery)
			}
		})
	}
	t.Run("an unreachable smsbox means down, naming the host only", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := srv.URL
		srv.Close()
		g := newGateway(t, addr+"/cgi-bin/sendsms", false, time.Second)
		err := g.Health(t.Context())
		if err == nil || otp.ErrorKindOf(err) != otp.NotSent || strings.Contains(err.Error(), password) {
			t.Fatalf("got %v, want a not-sent unreachable error without the password", err)
		}
	})
}

// TestKannelRealHealth checks the health probe against a real smsbox: up
// with the right password, down with a wrong one, and no SMS either way.
func TestKannelRealHealth(t *testing.T) {
	t.Parallel()
	k := kanneltest.Start(t)
	good, err := kannel.New(kannel.Config{URL: k.SendSMSURL, Username: k.Username, Password: k.Password, From: "12345", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Health(t.Context()); err != nil {
		t.Fatalf("healthy Kannel: %v\n%s", err, k.Output())
	}
	bad, err := kannel.New(kannel.Config{URL: k.SendSMSURL, Username: k.Username, Password: "not-" + k.Password, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Health(t.Context()); err == nil || !strings.Contains(err.Error(), "refused the username and password") {
		t.Fatalf("wrong password: got %v, want the refusal", err)
	}
	// A real message afterwards is the first and only one fakesmsc sees.
	if _, err := good.Send(t.Context(), otp.Message{To: "+819012345678", Body: "after the health checks"}); err != nil {
		t.Fatal(err)
	}
	if sms := k.WaitMessages(t, 1, 10*time.Second); len(sms) != 1 || sms[0].Text != "after the health checks" {
		t.Fatalf("fakesmsc got %+v, want only the one message sent after the health checks", sms)
	}
}

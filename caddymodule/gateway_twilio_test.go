package caddymodule

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/twilio"
)

const (
	twAccount = "AC00000000000000000000000000000001"
	twToken   = "f00dfeedf00dfeedf00dfeedf00dfeed"
)

func TestTwilioGatewayCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, input string
		want        string // the module's JSON
		err         string
	}{
		{name: "every option is read", input: `twilio {
				account_sid {env.TWILIO_ACCOUNT_SID}
				auth_token {env.TWILIO_AUTH_TOKEN}
				from +815012345678
				base_url https://api.twilio.com
				timeout 5s
				status_callback
			}`,
			want: `{"account_sid":"{env.TWILIO_ACCOUNT_SID}","auth_token":"{env.TWILIO_AUTH_TOKEN}","from":"+815012345678",` +
				`"base_url":"https://api.twilio.com","timeout":5000000000,"status_callback":true}`},
		{name: "a messaging service instead of a number", input: `twilio {
				account_sid AC01
				auth_token t
				messaging_service_sid MG01
			}`,
			want: `{"account_sid":"AC01","auth_token":"t","messaging_service_sid":"MG01"}`},
		{name: "an argument is refused", input: `twilio AC01`, err: `gateway twilio takes no argument, got "AC01"`},
		{name: "no block lacks the credentials", input: `twilio`, err: "expected account_sid and auth_token"},
		{name: "a missing auth token is refused", input: "twilio {\n account_sid AC01\n from +815012345678\n}", err: "expected account_sid and auth_token"},
		{name: "no sender is refused", input: "twilio {\n account_sid AC01\n auth_token t\n}", err: "expected exactly one of from and messaging_service_sid"},
		{name: "two senders are refused", input: "twilio {\n account_sid AC01\n auth_token t\n from +815012345678\n messaging_service_sid MG01\n}",
			err: "expected exactly one of from and messaging_service_sid"},
		{name: "an unknown option is refused with the list", input: "twilio {\n account_sid AC01\n token t\n}",
			err: `unknown twilio gateway option "token": expected account_sid, auth_token`},
		{name: "an option without its value is refused", input: "twilio {\n account_sid\n}", err: "account_sid: expected one value"},
		{name: "an option with two values is refused", input: "twilio {\n from +815012345678 +815012345679\n}", err: `from: expected one value, got another: "+815012345679"`},
		{name: "a timeout that is not a duration is refused", input: "twilio {\n timeout soon\n}", err: `timeout "soon": expected a duration`},
		{name: "status_callback takes no value", input: "twilio {\n status_callback yes\n}", err: `status_callback takes no value, got "yes"`},
		{name: "the error names the line", input: "twilio {\n account_sid AC01\n\n nope x\n}", err: "at Testfile:4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCaddyfileModule(t, new(TwilioGateway), tc.input, tc.want, tc.err)
		})
	}
}

// twFake is a fake Twilio that hands each request's basic auth, path and
// form to the test.
type twSeen struct {
	user, pass, path string
	form             url.Values
}

func twFake(t *testing.T) (*httptest.Server, <-chan twSeen) {
	t.Helper()
	got := make(chan twSeen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if err := r.ParseForm(); err != nil {
			t.Errorf("fake Twilio: %v", err)
		}
		got <- twSeen{user: user, pass: pass, path: r.URL.Path, form: r.PostForm}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"sid":"SM1","status":"queued"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func twContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func TestTwilioGatewayProvisionExpandsPlaceholdersAndDelegates(t *testing.T) {
	t.Setenv("STEPUP_TW_ACCOUNT", twAccount)
	t.Setenv("STEPUP_TW_TOKEN", twToken)
	srv, got := twFake(t)
	g := &TwilioGateway{AccountSID: "{env.STEPUP_TW_ACCOUNT}", AuthToken: "{env.STEPUP_TW_TOKEN}", From: "+815012345678",
		BaseURL: srv.URL, StatusCallback: true}
	if err := g.Provision(twContext(t)); err != nil {
		t.Fatal(err)
	}
	m := otp.Message{To: "+819012345678", Body: "Example code: 739214", Locale: "en",
		ReceiptBase: "https://example.com/.sms-stepup/receipts", ReceiptToken: "tok"}

	r, err := g.Send(t.Context(), m)
	if err != nil || r.ID != "SM1" || r.Gateway != "twilio" {
		t.Fatalf("send: %+v %v", r, err)
	}
	s := <-got
	if s.user != twAccount || s.pass != twToken || s.path != "/2010-04-01/Accounts/"+twAccount+"/Messages.json" {
		t.Errorf("send went to %s as %q:%q, want the expanded account SID and token", s.path, s.user, s.pass)
	}
	receiptURL := m.ReceiptURL("twilio")
	if s.form.Get("StatusCallback") != receiptURL {
		t.Errorf("StatusCallback %q, want %q", s.form.Get("StatusCallback"), receiptURL)
	}

	caps := g.Capabilities()
	if caps.Voice == nil || caps.Receipts["twilio"] == nil {
		t.Fatalf("capabilities %+v: with from and status_callback, Twilio calls and takes reports", caps)
	}
	if _, err := caps.Voice.Call(t.Context(), m); err != nil {
		t.Fatalf("call: %v", err)
	}
	if s := <-got; s.path != "/2010-04-01/Accounts/"+twAccount+"/Calls.json" || !strings.Contains(s.form.Get("Twiml"), "7, 3, 9, 2, 1, 4") {
		t.Errorf("call went to %s with %v", s.path, s.form)
	}

	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}
	req := httptest.NewRequest(http.MethodPost, receiptURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(twilio.SignatureHeader, twilio.Signature(twToken, receiptURL, form))
	if rep, err := caps.Receipts["twilio"].ParseReceipt(req, receiptURL); err != nil || rep.Status != otp.DeliveryDelivered {
		t.Errorf("receipt signed with the expanded token: %+v %v", rep, err)
	}
	req = httptest.NewRequest(http.MethodPost, receiptURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(twilio.SignatureHeader, twilio.Signature("{env.STEPUP_TW_TOKEN}", receiptURL, form))
	if _, err := caps.Receipts["twilio"].ParseReceipt(req, receiptURL); err == nil {
		t.Error("a receipt signed with the unexpanded placeholder was accepted")
	}
}

func TestTwilioGatewayProvisionRefuses(t *testing.T) {
	t.Setenv("STEPUP_TW_TOKEN_SET", twToken)
	cases := []struct {
		name string
		g    TwilioGateway
		err  string
	}{
		{"an unset environment variable as the token",
			TwilioGateway{AccountSID: twAccount, AuthToken: "{env.STEPUP_TW_TOKEN_UNSET}", From: "+815012345678"},
			"twilio gateway auth_token: evaluated placeholder {env.STEPUP_TW_TOKEN_UNSET} is empty"},
		{"an unknown placeholder as the account",
			TwilioGateway{AccountSID: "{tw.account}", AuthToken: "{env.STEPUP_TW_TOKEN_SET}", From: "+815012345678"},
			"twilio gateway account_sid: unrecognized placeholder {tw.account}"},
		{"an account SID that is not one",
			TwilioGateway{AccountSID: "SK01", AuthToken: "{env.STEPUP_TW_TOKEN_SET}", From: "+815012345678"},
			"gateway twilio: the account SID must start with AC"},
		{"plain http to Twilio",
			TwilioGateway{AccountSID: twAccount, AuthToken: "{env.STEPUP_TW_TOKEN_SET}", From: "+815012345678", BaseURL: "http://api.twilio.com"},
			"expected https"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.Provision(twContext(t))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
			if strings.Contains(err.Error(), twToken) {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
}

func TestTwilioGatewayWithoutFromOffersNoCalls(t *testing.T) {
	t.Parallel()
	g := &TwilioGateway{AccountSID: twAccount, AuthToken: twToken, MessagingServiceSID: "MG01"}
	if err := g.Provision(twContext(t)); err != nil {
		t.Fatal(err)
	}
	if c := g.Capabilities(); c.Voice != nil || c.Receipts != nil || c.Health == nil {
		t.Fatalf("capabilities %+v: a messaging service can't place calls, no status_callback takes no reports, and the account can always be checked", c)
	}
}

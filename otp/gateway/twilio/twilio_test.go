package twilio_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/twilio"
)

const (
	accountSID = "AC00000000000000000000000000000001"
	authToken  = "f00dfeedf00dfeedf00dfeedf00dfeed"
	fromNumber = "+815012345678"
	serviceSID = "MG00000000000000000000000000000003"
	number     = "+819012345678"
	code       = "739214"
)

func message() otp.Message {
	return otp.Message{
		To:           number,
		Body:         "Example code: " + code + "\nIt expires in 5 min. Never share it with anyone.\n\n@example.com #" + code,
		Locale:       "en",
		Ref:          "challenge-1",
		ReceiptBase:  "https://example.com/.sms-stepup/receipts",
		ReceiptToken: "r3ceiptT0ken",
	}
}

// seen is the part of a request the fake Twilio checks.
type seen struct {
	method, path, contentType string
	user, pass                string
	basicAuth                 bool
	form                      url.Values
}

// fakeTwilio answers every request with status and answer and hands what it
// received to the test.
func fakeTwilio(t *testing.T, status int, answer string) (*httptest.Server, <-chan seen) {
	t.Helper()
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type")}
		s.user, s.pass, s.basicAuth = r.BasicAuth()
		if err := r.ParseForm(); err != nil {
			t.Errorf("fake Twilio: %v", err)
		}
		s.form = r.PostForm
		got <- s
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func newGateway(t *testing.T, cfg twilio.Config) *twilio.Gateway {
	t.Helper()
	if cfg.AccountSID == "" {
		cfg.AccountSID = accountSID
	}
	if cfg.AuthToken == "" {
		cfg.AuthToken = authToken
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		cfg.From = fromNumber
	}
	g, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// gatewayError asserts err is a *otp.GatewayError of kind and reason.
func gatewayError(t *testing.T, err error, kind otp.ErrorKind, reason string) *otp.GatewayError {
	t.Helper()
	var ge *otp.GatewayError
	if !errors.As(err, &ge) {
		t.Fatalf("error %v (%T), want a *otp.GatewayError", err, err)
	}
	if ge.Kind != kind || ge.Reason != reason {
		t.Fatalf("error %v: kind %v reason %q, want %v %q", err, ge.Kind, ge.Reason, kind, reason)
	}
	return ge
}

// noSecrets asserts that text holds neither the auth token, the code nor the
// full number.
func noSecrets(t *testing.T, text string) {
	t.Helper()
	for _, secret := range []string{authToken, code, number} {
		if strings.Contains(text, secret) {
			t.Errorf("%q contains %q", text, secret)
		}
	}
}

func TestTwilioNewValidatesTheConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  twilio.Config
		err  string
	}{
		{"a from number is enough", twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber}, ""},
		{"a messaging service is enough", twilio.Config{AccountSID: accountSID, AuthToken: authToken, MessagingServiceSID: serviceSID}, ""},
		{"a loopback http base URL is allowed for tests", twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber, BaseURL: "http://127.0.0.1:8080/"}, ""},
		{"an account SID must start with AC", twilio.Config{AccountSID: "SK0001", AuthToken: authToken, From: fromNumber}, "must start with AC"},
		{"an account SID cannot hold a path", twilio.Config{AccountSID: "AC01/../x", AuthToken: authToken, From: fromNumber}, "must start with AC"},
		{"an auth token is required", twilio.Config{AccountSID: accountSID, From: fromNumber}, "no auth token"},
		{"a sender is required", twilio.Config{AccountSID: accountSID, AuthToken: authToken}, "exactly one of from"},
		{"two senders are refused", twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber, MessagingServiceSID: serviceSID}, "exactly one of from"},
		{"a messaging service SID must start with MG", twilio.Config{AccountSID: accountSID, AuthToken: authToken, MessagingServiceSID: "PN01"}, "must start with MG"},
		{"a relative base URL is refused", twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber, BaseURL: "api.twilio.com"}, "expected an absolute URL"},
		{"plain http to another host is refused", twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber, BaseURL: "http://api.twilio.com"}, "expected https"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := twilio.New(tc.cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
			noSecrets(t, err.Error())
		})
	}
}

func TestTwilioSendPostsTheDocumentedForm(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		cfg            twilio.Config
		msg            func(otp.Message) otp.Message
		wantFrom       bool
		wantService    bool
		wantCallbackTo string
	}{
		{name: "from a number, receipts asked for", cfg: twilio.Config{StatusCallback: true},
			wantFrom: true, wantCallbackTo: "https://example.com/.sms-stepup/receipts/twilio/r3ceiptT0ken"},
		{name: "through a messaging service, under another name", cfg: twilio.Config{MessagingServiceSID: serviceSID, StatusCallback: true, Name: "twilio-jp"},
			wantService: true, wantCallbackTo: "https://example.com/.sms-stepup/receipts/twilio-jp/r3ceiptT0ken"},
		{name: "no status callback unless enabled", cfg: twilio.Config{}, wantFrom: true},
		{name: "no status callback for a message without a receipt URL", cfg: twilio.Config{StatusCallback: true},
			msg: func(m otp.Message) otp.Message { m.ReceiptToken = ""; return m }, wantFrom: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, got := fakeTwilio(t, http.StatusCreated, `{"sid":"SM00000000000000000000000000000009","status":"queued","to":"+819012345678"}`)
			tc.cfg.BaseURL = srv.URL
			g := newGateway(t, tc.cfg)
			m := message()
			if tc.msg != nil {
				m = tc.msg(m)
			}
			r, err := g.Send(t.Context(), m)
			if err != nil {
				t.Fatal(err)
			}
			wantName := tc.cfg.Name
			if wantName == "" {
				wantName = "twilio"
			}
			if r != (otp.Receipt{Gateway: wantName, ID: "SM00000000000000000000000000000009", Status: otp.DeliveryQueued}) {
				t.Errorf("receipt %+v", r)
			}
			s := <-got
			if s.method != http.MethodPost {
				t.Errorf("method %s, want POST", s.method)
			}
			if want := "/2010-04-01/Accounts/" + accountSID + "/Messages.json"; s.path != want {
				t.Errorf("path %s, want %s", s.path, want)
			}
			if !s.basicAuth || s.user != accountSID || s.pass != authToken {
				t.Errorf("basic auth %t %q %q, want the account SID and auth token", s.basicAuth, s.user, s.pass)
			}
			if s.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", s.contentType)
			}
			if s.form.Get("To") != number || s.form.Get("Body") != m.Body {
				t.Errorf("To %q Body %q", s.form.Get("To"), s.form.Get("Body"))
			}
			if _, ok := s.form["From"]; ok != tc.wantFrom || (ok && s.form.Get("From") != fromNumber) {
				t.Errorf("From %q present %t, want present %t", s.form.Get("From"), ok, tc.wantFrom)
			}
			if _, ok := s.form["MessagingServiceSid"]; ok != tc.wantService || (ok && s.form.Get("MessagingServiceSid") != serviceSID) {
				t.Errorf("MessagingServiceSid %q present %t, want present %t", s.form.Get("MessagingServiceSid"), ok, tc.wantService)
			}
			if _, ok := s.form["StatusCallback"]; ok != (tc.wantCallbackTo != "") || s.form.Get("StatusCallback") != tc.wantCallbackTo {
				t.Errorf("StatusCallback %q present %t, want %q", s.form.Get("StatusCallback"), ok, tc.wantCallbackTo)
			}
			if len(s.form) != 3+boolInt(tc.wantCallbackTo != "") {
				t.Errorf("form %v has fields beyond the documented ones", s.form)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestTwilioSendMapsAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		status     int
		answer     string
		wantStatus otp.DeliveryStatus
		kind       otp.ErrorKind
		reason     string
		code       string
	}{
		{name: "201 queued is a queued receipt", status: 201, answer: `{"sid":"SM1","status":"queued"}`, wantStatus: otp.DeliveryQueued},
		{name: "201 accepted (messaging service) is a queued receipt", status: 201, answer: `{"sid":"SM1","status":"accepted"}`, wantStatus: otp.DeliveryQueued},
		{name: "201 sent is a sent receipt", status: 201, answer: `{"sid":"SM1","status":"sent"}`, wantStatus: otp.DeliverySent},
		{name: "21211 invalid To is an invalid number", status: 400,
			answer: `{"code":21211,"message":"The 'To' number +819012345678 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`,
			kind:   otp.Rejected, reason: "invalid_number", code: "21211"},
		{name: "21614 not a mobile number is an invalid number", status: 400,
			answer: `{"code":21614,"message":"'To' number is not a valid mobile number","status":400}`,
			kind:   otp.Rejected, reason: "invalid_number", code: "21614"},
		{name: "21610 unsubscribed recipient", status: 400,
			answer: `{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}`,
			kind:   otp.Rejected, reason: "unsubscribed", code: "21610"},
		{name: "429 with 20429 is rate limited and not sent", status: 429,
			answer: `{"code":20429,"message":"Too Many Requests","status":429}`,
			kind:   otp.NotSent, reason: "rate_limited", code: "20429"},
		{name: "a bare 429 is rate limited", status: 429, answer: ``, kind: otp.NotSent, reason: "rate_limited"},
		{name: "401 with 20003 is an auth failure and not sent", status: 401,
			answer: `{"code":20003,"message":"Authenticate","status":401}`,
			kind:   otp.NotSent, reason: "auth", code: "20003"},
		{name: "another 4xx is rejected", status: 400,
			answer: `{"code":21408,"message":"Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +819012345678","status":400}`,
			kind:   otp.Rejected, reason: "rejected", code: "21408"},
		{name: "500 may have been accepted", status: 500,
			answer: `{"code":20500,"message":"Internal Server Error","status":500}`,
			kind:   otp.Unknown, reason: "server_error", code: "20500"},
		{name: "503 may have been accepted too", status: 503,
			answer: `{"code":20503,"message":"Service unavailable","status":503}`,
			kind:   otp.Unknown, reason: "server_error", code: "20503"},
		{name: "an HTML 502 from the edge is unknown", status: 502, answer: `<html>Bad Gateway</html>`, kind: otp.Unknown, reason: "server_error"},
		{name: "an undocumented redirect is unknown", status: 302, answer: ``, kind: otp.Unknown, reason: "server_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeTwilio(t, tc.status, tc.answer)
			g := newGateway(t, twilio.Config{BaseURL: srv.URL})
			r, err := g.Send(t.Context(), message())
			if tc.kind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if r.Status != tc.wantStatus || r.ID != "SM1" || r.Gateway != "twilio" {
					t.Fatalf("receipt %+v, want status %s", r, tc.wantStatus)
				}
				return
			}
			ge := gatewayError(t, err, tc.kind, tc.reason)
			if ge.Code != tc.code || ge.Gateway != "twilio" {
				t.Errorf("code %q gateway %q, want %q twilio", ge.Code, ge.Gateway, tc.code)
			}
			if r != (otp.Receipt{}) {
				t.Errorf("receipt %+v with an error", r)
			}
			noSecrets(t, err.Error())
			if !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tc.status)) {
				t.Errorf("error %q does not give the HTTP status", err)
			}
		})
	}
}

func TestTwilioErrorMasksTheNumberTwilioEchoes(t *testing.T) {
	t.Parallel()
	srv, _ := fakeTwilio(t, 400, `{"code":21211,"message":"The 'To' number +819012345678 is not a valid phone number.","status":400}`)
	_, err := newGateway(t, twilio.Config{BaseURL: srv.URL}).Send(t.Context(), message())
	if err == nil || !strings.Contains(err.Error(), "The 'To' number "+otp.MaskE164(number)+" is not a valid phone number.") {
		t.Fatalf("error %v, want Twilio's message with the number masked", err)
	}
}

func TestTwilioNoAnswerWithinTheTimeoutIsUnknown(t *testing.T) {
	t.Parallel()
	read := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		close(read)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	g := newGateway(t, twilio.Config{BaseURL: srv.URL, Timeout: 300 * time.Millisecond})
	_, err := g.Send(t.Context(), message())
	<-read
	gatewayError(t, err, otp.Unknown, "no_answer")
	noSecrets(t, err.Error())
}

func TestTwilioClosedPortIsNotSent(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := newGateway(t, twilio.Config{BaseURL: "http://" + addr})
	_, err = g.Send(t.Context(), message())
	gatewayError(t, err, otp.NotSent, "unreachable")
	noSecrets(t, err.Error())
}

func TestTwilioSendHonoursTheContext(t *testing.T) {
	t.Parallel()
	srv, _ := fakeTwilio(t, http.StatusCreated, `{"sid":"SM1","status":"queued"}`)
	g := newGateway(t, twilio.Config{BaseURL: srv.URL})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := g.Send(ctx, message())
	gatewayError(t, err, otp.NotSent, "unreachable")
}

func TestTwilioCallReadsTheCodeDigitByDigit(t *testing.T) {
	t.Parallel()
	srv, got := fakeTwilio(t, http.StatusCreated, `{"sid":"CA00000000000000000000000000000007","status":"queued"}`)
	g := newGateway(t, twilio.Config{BaseURL: srv.URL, StatusCallback: true})
	r, err := g.Call(t.Context(), message())
	if err != nil {
		t.Fatal(err)
	}
	if r != (otp.Receipt{Gateway: "twilio", ID: "CA00000000000000000000000000000007", Status: otp.DeliveryQueued}) {
		t.Errorf("receipt %+v", r)
	}
	s := <-got
	if want := "/2010-04-01/Accounts/" + accountSID + "/Calls.json"; s.method != http.MethodPost || s.path != want {
		t.Errorf("%s %s, want POST %s", s.method, s.path, want)
	}
	if !s.basicAuth || s.user != accountSID || s.pass != authToken || s.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("basic auth %t %q, Content-Type %q", s.basicAuth, s.user, s.contentType)
	}
	if s.form.Get("To") != number || s.form.Get("From") != fromNumber || len(s.form) != 3 {
		t.Errorf("form %v, want To, From and Twiml only", s.form)
	}
	want := `<Response><Say language="en-US" loop="2">Example code: 7, 3, 9, 2, 1, 4 It expires in 5 min. Never share it with anyone.</Say></Response>`
	if tw := s.form.Get("Twiml"); tw != want {
		t.Errorf("Twiml\n%s\nwant\n%s", tw, want)
	}
}

func TestTwiML(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, text, locale, want string }{
		{"Japanese gets a Japanese voice and pauses", "例 確認コード: 012345（10分有効）\n誰にも教えないでください。\n\n@example.com #012345", "ja",
			`<Response><Say language="ja-JP" loop="2">例 確認コード: 0、1、2、3、4、5（10分有効） 誰にも教えないでください。</Say></Response>`},
		{"markup in the text is escaped", `a<b & "c" 123456`, "en",
			`<Response><Say language="en-US" loop="2">a&lt;b &amp; &#34;c&#34; 1, 2, 3, 4, 5, 6</Say></Response>`},
		{"a closing tag in the text cannot end the Say", `</Say><Hangup/>`, "en",
			`<Response><Say language="en-US" loop="2">&lt;/Say&gt;&lt;Hangup/&gt;</Say></Response>`},
		{"short numbers are read as numbers", "wait 30 s, code 9876543210", "fr",
			`<Response><Say language="en-US" loop="2">wait 30 s, code 9, 8, 7, 6, 5, 4, 3, 2, 1, 0</Say></Response>`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := twilio.TwiML(tc.text, tc.locale); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestTwilioCallNeedsAFromNumber(t *testing.T) {
	t.Parallel()
	srv, got := fakeTwilio(t, http.StatusCreated, `{"sid":"CA1","status":"queued"}`)
	g := newGateway(t, twilio.Config{BaseURL: srv.URL, MessagingServiceSID: serviceSID})
	_, err := g.Call(t.Context(), message())
	ge := gatewayError(t, err, otp.NotSent, "unsupported")
	if !strings.Contains(ge.Error(), "no From number for calls") {
		t.Errorf("error %q", ge)
	}
	select {
	case s := <-got:
		t.Fatalf("a request was made: %+v", s)
	default:
	}
}

func TestTwilioSignatureMatchesHandComputedVectors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, token, url string
		form             url.Values
		want             string
	}{
		// Twilio's own example from its request-validation docs.
		{"Twilio's documented example", "12345", "https://mycompany.com/myapp.php?foo=1&bar=2", url.Values{
			"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675309"}, "Digits": {"1234"},
			"From": {"+14158675309"}, "To": {"+18005551212"},
		}, "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
		// printf '%s' '<url>AccountSidAC...1MessageSidSM...2MessageStatusdeliveredTo+819012345678' |
		//   openssl dgst -sha1 -hmac f00dfeed... -binary | base64
		{"a status callback to a receipt URL", authToken, "https://example.com/.sms-stepup/receipts/twilio/r3ceiptT0ken", url.Values{
			"MessageStatus": {"delivered"}, "To": {number}, "AccountSid": {accountSID},
			"MessageSid": {"SM00000000000000000000000000000002"},
		}, "AEle1GMcJyJjxEzUSkjirLiU1z0="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := twilio.Signature(tc.token, tc.url, tc.form); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestTwilioParseReceipt(t *testing.T) {
	t.Parallel()
	const receiptURL = "https://example.com/.sms-stepup/receipts/twilio/r3ceiptT0ken"
	callback := func(status string) url.Values {
		return url.Values{"AccountSid": {accountSID}, "MessageSid": {"SM00000000000000000000000000000002"},
			"MessageStatus": {status}, "To": {number}}
	}
	request := func(method, target string, form url.Values, signature string) *http.Request {
		r := httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if signature != "" {
			r.Header.Set(twilio.SignatureHeader, signature)
		}
		return r
	}
	g := newGateway(t, twilio.Config{})

	t.Run("each documented status maps to a delivery status", func(t *testing.T) {
		t.Parallel()
		for status, want := range map[string]otp.DeliveryStatus{
			"queued": otp.DeliveryQueued, "accepted": otp.DeliveryQueued, "sending": otp.DeliveryQueued,
			"sent": otp.DeliverySent, "delivered": otp.DeliveryDelivered,
			"undelivered": otp.DeliveryFailed, "failed": otp.DeliveryFailed,
		} {
			form := callback(status)
			got, err := g.ParseReceipt(request(http.MethodPost, receiptURL, form, twilio.Signature(authToken, receiptURL, form)), receiptURL)
			if err != nil || got.Status != want {
				t.Errorf("%s: got %q %v, want %q", status, got.Status, err, want)
			}
		}
	})
	t.Run("the hand-computed signature is accepted", func(t *testing.T) {
		t.Parallel()
		got, err := g.ParseReceipt(request(http.MethodPost, receiptURL, callback("delivered"), "AEle1GMcJyJjxEzUSkjirLiU1z0="), receiptURL)
		if err != nil || got != (otp.Receipt{Gateway: "twilio", ID: "SM00000000000000000000000000000002", Status: otp.DeliveryDelivered}) {
			t.Fatalf("got %+v %v", got, err)
		}
	})
	t.Run("a failure report carries Twilio's error code", func(t *testing.T) {
		t.Parallel()
		form := callback("undelivered")
		form.Set("ErrorCode", "30003")
		got, err := g.ParseReceipt(request(http.MethodPost, receiptURL, form, twilio.Signature(authToken, receiptURL, form)), receiptURL)
		if err != nil || got.Status != otp.DeliveryFailed || got.Error != "30003" {
			t.Fatalf("got %+v %v", got, err)
		}
	})

	good := callback("delivered")
	goodSig := twilio.Signature(authToken, receiptURL, good)
	tampered := callback("failed")
	extra := callback("delivered")
	extra.Set("ErrorCode", "30008")
	refused := []struct {
		name string
		r    *http.Request
		url  string
		err  string
	}{
		{"a missing signature", request(http.MethodPost, receiptURL, good, ""), receiptURL, "no X-Twilio-Signature"},
		{"a signature made with another token", request(http.MethodPost, receiptURL, good, twilio.Signature("0123456789abcdef0123456789abcdef", receiptURL, good)), receiptURL, "bad X-Twilio-Signature"},
		{"garbage as the signature", request(http.MethodPost, receiptURL, good, "not-a-signature"), receiptURL, "bad X-Twilio-Signature"},
		{"a tampered status", request(http.MethodPost, receiptURL, tampered, goodSig), receiptURL, "bad X-Twilio-Signature"},
		{"an added parameter", request(http.MethodPost, receiptURL, extra, goodSig), receiptURL, "bad X-Twilio-Signature"},
		{"a signature for another receipt URL", request(http.MethodPost, receiptURL, good, goodSig), receiptURL + "x", "bad X-Twilio-Signature"},
		{"a GET", request(http.MethodGet, receiptURL, url.Values{}, goodSig), receiptURL, "expected POST"},
		{"a signed but unknown status", request(http.MethodPost, receiptURL, callback("exploded"), twilio.Signature(authToken, receiptURL, callback("exploded"))), receiptURL, "unknown MessageStatus"},
	}
	for _, tc := range refused {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := g.ParseReceipt(tc.r, tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %+v %v, want an error containing %q", got, err, tc.err)
			}
			if got != (otp.Receipt{}) {
				t.Errorf("report %+v with an error", got)
			}
			noSecrets(t, err.Error())
		})
	}
}

package zettaireach

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

const (
	testToken    = "1234567890abcdefrghijklmnopqrstu"
	testClientID = "12345"
	testSMSCode  = "12345"
)

// fakeProvider checks each request against the CommonMT specification and
// answers with what the test sets: an HTTP status and a body.
type fakeProvider struct {
	t      *testing.T
	mu     sync.Mutex
	status int
	body   string
	forms  []url.Values
	paths  []string
}

func (f *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	switch r.URL.Path {
	case SendPath:
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			f.t.Errorf("send: %s with Content-Type %q, expected a form POST", r.Method, r.Header.Get("Content-Type"))
		}
		raw, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			f.t.Errorf("send body is not a form: %v", err)
		}
		if r.URL.RawQuery != "" {
			f.t.Errorf("send put %q in the query string: the token belongs in the body", r.URL.RawQuery)
		}
		f.forms = append(f.forms, form)
	case TemplatePath:
		q := r.URL.Query()
		if r.Method != http.MethodGet || q.Get("token") != testToken || q.Get("clientId") != testClientID {
			f.t.Errorf("template read: %s %v", r.Method, q)
		}
	default:
		f.t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
}

func newFake(t *testing.T, status int, body string) (*fakeProvider, *Gateway) {
	t.Helper()
	f := &fakeProvider{t: t, status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	g, err := New(Config{Token: testToken, ClientID: testClientID, SMSCode: testSMSCode, BaseURL: srv.URL, DLR: true})
	if err != nil {
		t.Fatal(err)
	}
	return f, g
}

const okBody = `{"responseCode":0,"responseMessage":"Success.","phoneNumber":"+819012345678","smsMessage":"x"}`

func TestSendPostsTheDocumentedForm(t *testing.T) {
	f, g := newFake(t, 200, okBody)
	body := "Example の確認コード: 123456（10分有効）"
	rc, err := g.Send(context.Background(), otp.Message{To: "+819012345678", Body: body,
		ReceiptBase: "https://app.example.com/stepup/receipt", ReceiptToken: "sealed-token"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Gateway != "zettai_reach" || rc.Status != otp.DeliveryQueued {
		t.Errorf("receipt %+v", rc)
	}
	form := f.forms[0]
	want := url.Values{"token": {testToken}, "clientId": {testClientID}, "smsCode": {testSMSCode},
		"phoneNumber": {"+819012345678"}, "message": {body}, "clientTag": {"sealed-token"}}
	for k, v := range want {
		if form.Get(k) != v[0] {
			t.Errorf("field %s = %q, want %q", k, form.Get(k), v[0])
		}
	}
	if len(form) != len(want) {
		t.Errorf("form has fields %v, want exactly %v", form, want)
	}
}

func TestSendWithoutDLRSetsNoClientTag(t *testing.T) {
	f, _ := newFake(t, 200, okBody)
	srv := httptest.NewServer(f)
	defer srv.Close()
	g, err := New(Config{Token: testToken, ClientID: testClientID, SMSCode: testSMSCode, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Send(context.Background(), otp.Message{To: "+817012345678", Body: "x", ReceiptBase: "https://a/r", ReceiptToken: "t"}); err != nil {
		t.Fatal(err)
	}
	if f.forms[0].Has("clientTag") {
		t.Error("clientTag sent without dlr")
	}
	if g.Capabilities().Receipts != nil {
		t.Error("receipts without dlr")
	}
}

func TestSendClassifiesEveryDocumentedAnswer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		kind   otp.ErrorKind
		reason string
	}{
		{"an invalid phone number is refused for good", 200, `{"responseCode":110,"responseMessage":"Invalid phoneNumber."}`, otp.Rejected, "invalid_number"},
		{"a missing phone number is refused for good", 200, `{"responseCode":100,"responseMessage":"Required phoneNumber."}`, otp.Rejected, "invalid_number"},
		{"a wrong token is an auth failure another provider can pass", 200, `{"responseCode":110,"responseMessage":"Invalid token."}`, otp.NotSent, "auth"},
		{"a wrong sms code is an auth failure", 200, `{"responseCode":110,"responseMessage":"Invalid smsCode."}`, otp.NotSent, "auth"},
		{"a message too long is not sent", 200, `{"responseCode":120,"responseMessage":"message too long."}`, otp.NotSent, "rejected"},
		{"the contract's sending cap is not sent", 200, `{"responseCode":300,"responseMessage":"Exceed sending count."}`, otp.NotSent, "rate_limited"},
		{"a duplicate client tag is not sent", 200, `{"responseCode":400,"responseMessage":"Duplicate client tag."}`, otp.NotSent, "rejected"},
		{"a system error answer is not sent, as the spec says", 200, `{"responseCode":500,"responseMessage":"System error."}`, otp.NotSent, "server_error"},
		{"throttling with 429 is not sent", 429, ``, otp.NotSent, "rate_limited"},
		{"the API IP restriction is not sent", 403, ``, otp.NotSent, "auth"},
		{"an HTTP 500 may have been taken", 500, ``, otp.Unknown, "server_error"},
		{"a 503 from an edge may have been taken", 503, `busy`, otp.Unknown, "server_error"},
		{"a 200 without a responseCode may have been taken", 200, `<html>ok</html>`, otp.Unknown, "no_answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, g := newFake(t, tc.status, tc.body)
			_, err := g.Send(context.Background(), otp.Message{To: "+819012345678", Body: "code 123456"})
			var ge *otp.GatewayError
			if !errors.As(err, &ge) || ge.Kind != tc.kind || ge.Reason != tc.reason {
				t.Fatalf("got %v, want %v/%s", err, tc.kind, tc.reason)
			}
			if strings.Contains(err.Error(), "123456") || strings.Contains(err.Error(), testToken) {
				t.Errorf("error leaks the code or token: %v", err)
			}
		})
	}
}

func TestSendRefusesWhatTheProviderCannotTakeBeforeSending(t *testing.T) {
	for _, tc := range []struct{ name, to, body string }{
		{"a number outside Japan goes to the next gateway", "+14155550100", "x"},
		{"a Japanese landline goes to the next gateway", "+81312345678", "x"},
		{"a message over 660 characters is not sent", "+819012345678", strings.Repeat("あ", 661)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, g := newFake(t, 200, okBody)
			_, err := g.Send(context.Background(), otp.Message{To: tc.to, Body: tc.body})
			if otp.ErrorKindOf(err) != otp.NotSent {
				t.Fatalf("got %v, want NotSent", err)
			}
			if len(f.paths) != 0 {
				t.Errorf("the provider was asked: %v", f.paths)
			}
		})
	}
}

func TestHealthReadsTemplatesAndSendsNothing(t *testing.T) {
	f, g := newFake(t, 200, `{"responseCode":0,"responseMessage":"Success.","count":0,"templates":[]}`)
	if err := g.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.paths) != 1 || f.paths[0] != "GET "+TemplatePath || len(f.forms) != 0 {
		t.Errorf("health asked %v", f.paths)
	}
	f.body = `{"responseCode":110,"responseMessage":"Invalid token."}`
	if err := g.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "token") || strings.Contains(err.Error(), testToken) {
		t.Errorf("a refused token: %v", err)
	}
	f.status, f.body = 503, ""
	if err := g.Health(context.Background()); err == nil {
		t.Error("a 503 is healthy")
	}
}

func dlrRequest(t *testing.T, events ...map[string]any) *http.Request {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"eventNotifications": events})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/receipt/zettai_reach/push", strings.NewReader(url.Values{"json": {string(raw)}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func dlrEventOf(status any) map[string]any {
	return map[string]any{"type": "DLR", "dateTime": "2023/01/01 12:30:00", "messageId": "abcdefghijklmnopqrstuv0123456789",
		"phoneNumber": "+819012345678", "smsCode": "12345", "messageText": "x", "clientId": "12345",
		"clientTag": "sealed-token", "statusId": status, "statusDescription": "Message delivered", "detailedStatusId": 51824}
}

func TestParseReceiptReadsTheDLRPush(t *testing.T) {
	_, g := newFake(t, 200, okBody)
	for _, tc := range []struct {
		status any
		want   otp.DeliveryStatus
	}{{"2", otp.DeliveryDelivered}, {2, otp.DeliveryDelivered}, {"3", otp.DeliveryFailed}, {"1", otp.DeliverySent}, {"0", otp.DeliverySent}} {
		rep, err := g.ParseReceipt(dlrRequest(t, dlrEventOf(tc.status)), "")
		if err != nil || rep.Status != tc.want || rep.Token != "sealed-token" || rep.ID != "abcdefghijklmnopqrstuv0123456789" {
			t.Errorf("statusId %v: %+v, %v", tc.status, rep, err)
		}
		if tc.want == otp.DeliveryFailed && rep.Error != "51824" {
			t.Errorf("failed report error %q", rep.Error)
		}
	}
}

func TestParseReceiptRefusesWhatIsNotOneDLR(t *testing.T) {
	_, g := newFake(t, 200, okBody)
	noTag := dlrEventOf("2")
	delete(noTag, "clientTag")
	for name, r := range map[string]*http.Request{
		"a push of two results":      dlrRequest(t, dlrEventOf("2"), dlrEventOf("3")),
		"a result without clientTag": dlrRequest(t, noTag),
		"an unknown statusId":        dlrRequest(t, dlrEventOf("7")),
		"a GET":                      httptest.NewRequest(http.MethodGet, "/receipt/zettai_reach/push?json=x", nil),
	} {
		if _, err := g.ParseReceipt(r, ""); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := Config{Token: testToken, ClientID: testClientID, SMSCode: testSMSCode}
	for name, mod := range map[string]func(*Config){
		"a short token":          func(c *Config) { c.Token = "abc" },
		"a client id of letters": func(c *Config) { c.ClientID = "abc" },
		"a 4-digit sms code":     func(c *Config) { c.SMSCode = "1234" },
		"plain http to a host":   func(c *Config) { c.BaseURL = "http://sms-api.aossms.com" },
		"a base URL with a path": func(c *Config) { c.BaseURL = "https://sms-api.aossms.com/p5/api/mt.json" },
	} {
		c := good
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s accepted", name)
		} else if strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: error shows the token", name)
		}
	}
	if _, err := New(good); err != nil {
		t.Errorf("good config: %v", err)
	}
}

// TestSendKeepsWithinTheRate: the provider takes 600 requests a second for
// the whole account and throttles above it in ways it doesn't document, so
// the gateway holds sends back itself; one it can't fit in the request's
// time is not sent (a failover may go on), and the provider never sees it.
func TestSendKeepsWithinTheRate(t *testing.T) {
	f := &fakeProvider{t: t, status: http.StatusOK, body: okBody}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	g, err := New(Config{Token: testToken, ClientID: testClientID, SMSCode: testSMSCode, BaseURL: srv.URL, RatePerSecond: 1})
	if err != nil {
		t.Fatal(err)
	}
	msg := otp.Message{To: "+819012345678", Body: "123456"}
	if _, err := g.Send(context.Background(), msg); err != nil {
		t.Fatalf("first send: %v", err)
	}
	// The next token is a second away: a request with less time left is
	// refused at once rather than waiting past its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = g.Send(ctx, msg)
	var ge *otp.GatewayError
	if !errors.As(err, &ge) || ge.Kind != otp.NotSent || ge.Reason != "rate_limited" {
		t.Fatalf("a send over the rate: %v, want not sent (rate_limited)", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.forms) != 1 {
		t.Fatalf("the provider got %d sends, want 1", len(f.forms))
	}
	for _, bad := range []int{-1, MaxRate + 1} {
		if _, err := New(Config{Token: testToken, ClientID: testClientID, SMSCode: testSMSCode, RatePerSecond: bad}); err == nil {
			t.Errorf("rate %d accepted", bad)
		}
	}
}

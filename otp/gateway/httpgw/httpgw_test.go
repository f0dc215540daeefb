package httpgw_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpgw"
)

const (
	number = "+819012345678"
	code   = "739214"
	apiKey = "k3y-0f-the-pr0vider"
)

// text has what breaks naive templates: quotes, a backslash, a line break,
// markup and Japanese.
var text = "例 確認コード: \"" + code + "\" <b>&</b> \\\n誰にも教えないでください。"

func message() otp.Message {
	return otp.Message{
		To:           number,
		Body:         text,
		Locale:       "ja",
		Ref:          "challenge-1",
		ReceiptBase:  "https://example.com/.sms-stepup/receipts",
		ReceiptToken: "r3ceiptT0ken",
	}
}

// seen is what the fake provider received.
type seen struct {
	method, path string
	query        url.Values
	header       http.Header
	body         []byte
}

// fakeProvider answers every request with status and hands what it received
// to the test.
func fakeProvider(t *testing.T, status int) (*httptest.Server, <-chan seen) {
	t.Helper()
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("fake provider: %v", err)
		}
		got <- seen{method: r.Method, path: r.URL.Path, query: r.URL.Query(), header: r.Header, body: body}
		w.WriteHeader(status)
		io.WriteString(w, `{"result":"echo of `+number+` and `+code+`"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func newGateway(t *testing.T, cfg httpgw.Config) *httpgw.Gateway {
	t.Helper()
	g, err := httpgw.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

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

// noSecrets asserts that text holds neither the key, the code, the number
// nor the message's text.
func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{apiKey, code, number, url.QueryEscape(number), "確認コード"} {
		if strings.Contains(s, secret) {
			t.Errorf("%q contains %q", s, secret)
		}
	}
}

func TestHttpgwSendsTheRenderedJSONRequest(t *testing.T) {
	t.Parallel()
	srv, got := fakeProvider(t, http.StatusOK)
	g := newGateway(t, httpgw.Config{
		URL: srv.URL + "/v1/accounts/acme/messages?to={{urlquery .To}}",
		Headers: map[string]string{
			"Authorization": "Bearer " + apiKey,
			"X-Request-Ref": "{{.Ref}}",
			"X-Locale":      "{{.Locale}}",
		},
		Body:    `{"to": {{json .To}}, "text": {{json .Text}}, "lang": {{json .Locale}}, "callback": {{json .ReceiptURL}}}`,
		Receipt: &httpgw.ReceiptConfig{Format: httpgw.ReceiptJSON, Status: "status", Delivered: []string{"delivered"}, Failed: []string{"failed"}},
	})
	r, err := g.Send(t.Context(), message())
	if err != nil {
		t.Fatal(err)
	}
	if r != (otp.Receipt{Gateway: "http", Status: otp.DeliveryQueued}) {
		t.Errorf("receipt %+v", r)
	}
	s := <-got
	if s.method != http.MethodPost || s.path != "/v1/accounts/acme/messages" {
		t.Errorf("%s %s, want POST /v1/accounts/acme/messages", s.method, s.path)
	}
	if s.query.Get("to") != number {
		t.Errorf("query to=%q, want %q (a + must be escaped)", s.query.Get("to"), number)
	}
	if s.header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", s.header.Get("Content-Type"))
	}
	if s.header.Get("Authorization") != "Bearer "+apiKey || s.header.Get("X-Request-Ref") != "challenge-1" || s.header.Get("X-Locale") != "ja" {
		t.Errorf("headers %v", s.header)
	}
	var body struct{ To, Text, Lang, Callback string }
	if err := json.Unmarshal(s.body, &body); err != nil {
		t.Fatalf("body %s is not JSON: %v", s.body, err)
	}
	if body.To != number || body.Text != text || body.Lang != "ja" ||
		body.Callback != "https://example.com/.sms-stepup/receipts/http/r3ceiptT0ken" {
		t.Errorf("body decodes to %+v", body)
	}
	if !strings.Contains(string(s.body), "誰にも教えないでください。") || !strings.Contains(string(s.body), `<b>&</b>`) {
		t.Errorf("body %s: Japanese and markup should stay as they are, only JSON-escaped", s.body)
	}
}

func TestHttpgwGetPutsEverythingInTheURL(t *testing.T) {
	t.Parallel()
	srv, got := fakeProvider(t, http.StatusAccepted)
	g := newGateway(t, httpgw.Config{
		URL:    srv.URL + "/cgi-bin/sendsms?username=stepup&password=" + apiKey + "&to={{urlquery .To}}&text={{urlquery .Text}}&coding={{if eq .Locale \"ja\"}}2{{else}}0{{end}}",
		Method: "get",
	})
	if _, err := g.Send(t.Context(), message()); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.method != http.MethodGet || len(s.body) != 0 || s.header.Get("Content-Type") != "" {
		t.Errorf("%s with body %q and Content-Type %q, want a bare GET", s.method, s.body, s.header.Get("Content-Type"))
	}
	if s.query.Get("to") != number || s.query.Get("text") != text || s.query.Get("coding") != "2" || s.query.Get("password") != apiKey {
		t.Errorf("query %v", s.query)
	}
}

func TestHttpgwFormBodyIsNotHeldToJSON(t *testing.T) {
	t.Parallel()
	srv, got := fakeProvider(t, http.StatusOK)
	g := newGateway(t, httpgw.Config{
		URL:         srv.URL + "/send",
		ContentType: "application/x-www-form-urlencoded",
		Body:        "to={{urlquery .To}}&message={{urlquery .Text}}",
	})
	if _, err := g.Send(t.Context(), message()); err != nil {
		t.Fatal(err)
	}
	s := <-got
	form, err := url.ParseQuery(string(s.body))
	if err != nil || form.Get("to") != number || form.Get("message") != text {
		t.Errorf("form %v %v", form, err)
	}
	if s.header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", s.header.Get("Content-Type"))
	}
}

func TestHttpgwHMACHeaderSignsTheBody(t *testing.T) {
	t.Parallel()
	const secret = "in-house-shared-secret"
	srv, got := fakeProvider(t, http.StatusOK)
	g := newGateway(t, httpgw.Config{
		URL:        srv.URL + "/sms",
		Body:       `{"to": {{json .To}}, "text": {{json .Text}}}`,
		HMACHeader: "X-Signature",
		HMACSecret: secret,
	})
	if _, err := g.Send(t.Context(), message()); err != nil {
		t.Fatal(err)
	}
	s := <-got
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(s.body)
	want := hex.EncodeToString(mac.Sum(nil))
	if s.header.Get("X-Signature") != want {
		t.Errorf("X-Signature %q, want the hex HMAC-SHA256 of the body the server received, %q", s.header.Get("X-Signature"), want)
	}
	mac = hmac.New(sha256.New, []byte("another secret"))
	mac.Write(s.body)
	if s.header.Get("X-Signature") == hex.EncodeToString(mac.Sum(nil)) {
		t.Error("the signature does not depend on the secret")
	}
}

func TestHttpgwMapsStatuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		success []int
		status  int
		kind    otp.ErrorKind
		reason  string
	}{
		{name: "200 is a success by default", status: 200},
		{name: "201 is a success by default", status: 201},
		{name: "202 is a success by default", status: 202},
		{name: "a listed 204 is a success", success: []int{204}, status: 204},
		{name: "an unlisted 202 may have been taken", success: []int{200}, status: 202, kind: otp.Unknown, reason: "server_error"},
		{name: "429 is rate limited and not sent", status: 429, kind: otp.NotSent, reason: "rate_limited"},
		{name: "401 is an auth failure and not sent", status: 401, kind: otp.NotSent, reason: "auth"},
		{name: "400 is rejected", status: 400, kind: otp.Rejected, reason: "rejected"},
		{name: "422 is rejected", status: 422, kind: otp.Rejected, reason: "rejected"},
		{name: "500 may have been taken", status: 500, kind: otp.Unknown, reason: "server_error"},
		{name: "503 may have been taken", status: 503, kind: otp.Unknown, reason: "server_error"},
		{name: "a redirect is not followed and may have been taken", status: 307, kind: otp.Unknown, reason: "server_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, got := fakeProvider(t, tc.status)
			g := newGateway(t, httpgw.Config{URL: srv.URL + "/send", Body: `{"text": {{json .Text}}}`, SuccessStatus: tc.success, Name: "jp-sms"})
			r, err := g.Send(t.Context(), message())
			<-got
			if tc.kind == 0 {
				if err != nil || r != (otp.Receipt{Gateway: "jp-sms", Status: otp.DeliveryQueued}) {
					t.Fatalf("receipt %+v, error %v", r, err)
				}
				return
			}
			ge := gatewayError(t, err, tc.kind, tc.reason)
			if ge.Gateway != "jp-sms" || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tc.status)) {
				t.Errorf("error %v", err)
			}
			noSecrets(t, err.Error())
		})
	}
}

func TestHttpgwNoAnswerWithinTheTimeoutIsUnknown(t *testing.T) {
	t.Parallel()
	read := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		close(read)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	g := newGateway(t, httpgw.Config{
		URL:     srv.URL + "/send?key=" + apiKey + "&to={{urlquery .To}}",
		Body:    `{"text": {{json .Text}}}`,
		Timeout: 300 * time.Millisecond,
	})
	_, err := g.Send(t.Context(), message())
	<-read
	gatewayError(t, err, otp.Unknown, "no_answer")
	noSecrets(t, err.Error())
	if !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")) {
		t.Errorf("error %q should still name the host", err)
	}
}

func TestHttpgwClosedPortIsNotSent(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := newGateway(t, httpgw.Config{URL: "http://" + addr + "/send/{{urlquery .To}}?key=" + apiKey, Body: `{"text": {{json .Text}}}`})
	_, err = g.Send(t.Context(), message())
	gatewayError(t, err, otp.NotSent, "unreachable")
	noSecrets(t, err.Error())
}

func TestHttpgwNewRefusesBadTemplates(t *testing.T) {
	t.Parallel()
	const u = "https://sms.example/send"
	cases := []struct {
		name string
		cfg  httpgw.Config
		err  string
	}{
		{"a parse error names the template and line",
			httpgw.Config{URL: u, Body: "{\n  \"to\": {{json .To}},\n  \"text\": {{json .Text}\n}"}, "template: body:3:"},
		{"an unknown function fails at start",
			httpgw.Config{URL: u, Body: `{"text": {{jsn .Text}}}`}, `body:1: function "jsn" not defined`},
		{"an unknown field fails at start",
			httpgw.Config{URL: u, Body: `{"to": {{json .Phone}}}`}, "can't evaluate field Phone"},
		{"a JSON body without json fails at start",
			httpgw.Config{URL: u, Body: `{"text": "{{.Text}}"}`}, "does not render valid JSON"},
		{"a header template error names the header",
			httpgw.Config{URL: u, Headers: map[string]string{"X-Ref": "{{.Ref"}}, "template: header X-Ref:1:"},
		{"a header that would carry a line break fails at start",
			httpgw.Config{URL: u, Headers: map[string]string{"X-Text": "{{.Text}}"}}, "header X-Text renders a line break"},
		{"an invalid header name",
			httpgw.Config{URL: u, Headers: map[string]string{"X Text": "a"}}, `header "X Text": expected a header name`},
		{"a URL template that is not a URL",
			httpgw.Config{URL: "sms.example/{{.To}}"}, "does not render an absolute http or https URL"},
		{"a URL parse error names the url template",
			httpgw.Config{URL: u + "?to={{urlquery .To"}, "template: url:1:"},
		{"no URL", httpgw.Config{}, "no URL"},
		{"a GET with a body", httpgw.Config{URL: u, Method: "GET", Body: "x"}, "a GET request has no body"},
		{"an unknown method", httpgw.Config{URL: u, Method: "DELETE"}, `method "DELETE"`},
		{"a success status that is not one", httpgw.Config{URL: u, SuccessStatus: []int{2000}}, "success status 2000"},
		{"an HMAC header without a secret", httpgw.Config{URL: u, HMACHeader: "X-Signature"}, "both a header name and a secret"},
		{"an HMAC secret without a header", httpgw.Config{URL: u, HMACSecret: "s"}, "both a header name and a secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := httpgw.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestHttpgwJSONFunctionEscapes(t *testing.T) {
	t.Parallel()
	srv, got := fakeProvider(t, http.StatusOK)
	g := newGateway(t, httpgw.Config{URL: srv.URL, Body: `[{{json .Text}}, {{json .Locale}}]`})
	m := message()
	m.Body = "He said \"日本\"\t\\ </script>"
	if _, err := g.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	const want = `["He said \"日本\"\t\\ </script>", "ja"]`
	if s := <-got; string(s.body) != want {
		t.Errorf("body %s, want %s", s.body, want)
	}
}

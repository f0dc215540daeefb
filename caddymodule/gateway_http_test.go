package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func TestHTTPGatewayCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, input string
		want        string // the module's JSON
		err         string
	}{
		{name: "the url as the argument is enough", input: `http https://sms.example.jp/send`,
			want: `{"url":"https://sms.example.jp/send"}`},
		{name: "every option is read, the body as a backtick string", input: "http {\n" +
			"\turl \"https://sms.example.jp/v1/{{urlquery .To}}\"\n" +
			"\tmethod put\n" +
			"\theader Authorization \"Bearer {env.SMS_API_KEY}\"\n" +
			"\theader X-Ref {{.Ref}}\n" +
			"\tbody `{\"text\": {{json .Text}}}`\n" +
			"\tcontent_type application/vnd.sms+json\n" +
			"\tsuccess_status 200 204\n" +
			"\ttimeout 3s\n" +
			"\thmac_header X-Signature {env.SMS_HMAC}\n" +
			"}",
			want: `{"url":"https://sms.example.jp/v1/{{urlquery .To}}","method":"PUT",` +
				`"headers":{"Authorization":"Bearer {env.SMS_API_KEY}","X-Ref":"{{.Ref}}"},` +
				`"body":"{\"text\": {{json .Text}}}","content_type":"application/vnd.sms+json",` +
				`"success_status":[200,204],"timeout":3000000000,"hmac_header":"X-Signature","hmac_secret":"{env.SMS_HMAC}"}`},
		{name: "a heredoc body keeps its lines, less the closing marker's indent", input: "http https://sms.example.jp/send {\n" +
			"\tbody <<JSON\n" +
			"\t\t{\n" +
			"\t\t  \"to\": {{json .To}}\n" +
			"\t\t}\n" +
			"\t\tJSON\n" +
			"}",
			want: `{"url":"https://sms.example.jp/send","body":"{\n  \"to\": {{json .To}}\n}"}`},
		{name: "a GET without a body", input: "http {\n url `https://h/send?to={{urlquery .To}}&text={{urlquery .Text}}`\n method GET\n}",
			want: `{"url":"https://h/send?to={{urlquery .To}}\u0026text={{urlquery .Text}}","method":"GET"}`},
		{name: "an unquoted template with a space is two values", input: "http {\n url https://h/{{urlquery .To}}\n}",
			err: `url: expected one value, got another: ".To}}"`},
		{name: "no url is refused", input: "http {\n method POST\n}", err: "gateway http: expected a url, as its argument or in its block"},
		{name: "two arguments are refused", input: `http https://a https://b`, err: `at most one argument, its url; got another: "https://b"`},
		{name: "an unknown option is refused with the list", input: "http https://h {\n headers X y\n}",
			err: `unknown http gateway option "headers": expected url, method, header, body`},
		{name: "a header without a value is refused", input: "http https://h {\n header Authorization\n}",
			err: "header: expected a name and one value (quote a value with spaces), got 1 arguments"},
		{name: "a header with an unquoted spaced value is refused", input: "http https://h {\n header Authorization Bearer x\n}",
			err: "got 3 arguments"},
		{name: "a header given twice is refused", input: "http https://h {\n header X-A 1\n header X-A 2\n}", err: `header "X-A" is given twice`},
		{name: "an unknown method is refused", input: "http https://h {\n method DELETE\n}", err: `method "DELETE": expected GET, POST, PUT or PATCH`},
		{name: "a status that is not a number is refused", input: "http https://h {\n success_status 200 ok\n}", err: `success_status "ok": expected an HTTP status`},
		{name: "a status out of range is refused", input: "http https://h {\n success_status 2000\n}", err: `success_status "2000"`},
		{name: "success_status needs a status", input: "http https://h {\n success_status\n}", err: "success_status: expected one or more HTTP statuses"},
		{name: "hmac_header needs a name and a secret", input: "http https://h {\n hmac_header X-Signature\n}", err: "hmac_header: expected a header name and a secret"},
		{name: "a body without its value is refused", input: "http https://h {\n body\n}", err: "body: expected one value"},
		{name: "a GET with a body is refused", input: "http https://h {\n method get\n body x\n}", err: "a GET request has no body"},
		{name: "a bad timeout is refused", input: "http https://h {\n timeout 2h\n}", err: `timeout "2h": expected a duration`},
		{name: "the error names the line", input: "http https://h {\n\n\n method TRACE\n}", err: "at Testfile:4"},
		{name: "a form receipt with every option, values repeated and added up", input: "http https://h {\n" +
			"\treceipt FORM {\n" +
			"\t\tstatus stat\n" +
			"\t\tdelivered DELIVRD\n" +
			"\t\tfailed UNDELIV EXPIRED\n" +
			"\t\tfailed REJECTD\n" +
			"\t\tsent ACCEPTD ENROUTE\n" +
			"\t\treference id\n" +
			"\t\terror err\n" +
			"\t}\n" +
			"\ttimeout 3s\n" +
			"}",
			want: `{"url":"https://h","timeout":3000000000,"receipt":{"format":"form","status":"stat","delivered":["DELIVRD"],` +
				`"failed":["UNDELIV","EXPIRED","REJECTD"],"sent":["ACCEPTD","ENROUTE"],"reference":"id","error":"err"}}`},
		{name: "a JSON receipt with paths", input: "http https://h {\n receipt json {\n  status results.0.status\n  delivered 3\n  failed 5 7\n }\n}",
			want: `{"url":"https://h","receipt":{"format":"json","status":"results.0.status","delivered":["3"],"failed":["5","7"]}}`},
		{name: "a receipt without its format is refused", input: "http https://h {\n receipt {\n  status s\n }\n}",
			err: "receipt: expected how the provider reports, form or json"},
		{name: "a receipt in an unknown format is refused", input: "http https://h {\n receipt xml {\n }\n}",
			err: `receipt "xml": expected form`},
		{name: "a receipt with two formats is refused", input: "http https://h {\n receipt form json {\n }\n}",
			err: `receipt takes one argument, form or json; got another: "json"`},
		{name: "a receipt without a status is refused", input: "http https://h {\n receipt form {\n  delivered D\n  failed F\n }\n}",
			err: "receipt: expected status (where the report says it), delivered and failed"},
		{name: "a receipt without failed values is refused", input: "http https://h {\n receipt form {\n  status s\n  delivered D\n }\n}",
			err: "receipt: expected status (where the report says it), delivered and failed"},
		{name: "a status list without values is refused", input: "http https://h {\n receipt form {\n  status s\n  sent\n }\n}",
			err: "receipt sent: expected one or more status values"},
		{name: "a status with two locations is refused", input: "http https://h {\n receipt form {\n  status a b\n }\n}",
			err: "status: expected one value"},
		{name: "an unknown receipt option is refused with the list, and its line", input: "http https://h {\n receipt form {\n  status s\n  signature x\n }\n}",
			err: `unknown receipt option "signature": expected status, delivered, failed, sent, reference or error, at Testfile:4`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCaddyfileModule(t, new(HTTPGateway), tc.input, tc.want, tc.err)
		})
	}
}

type hgSeen struct {
	path   string
	header http.Header
	body   []byte
}

func hgFake(t *testing.T) (*httptest.Server, <-chan hgSeen) {
	t.Helper()
	got := make(chan hgSeen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("fake provider: %v", err)
		}
		got <- hgSeen{path: r.URL.Path, header: r.Header, body: body}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestHTTPGatewayProvisionExpandsPlaceholdersAroundTemplates(t *testing.T) {
	t.Setenv("STEPUP_HG_KEY", "k3y")
	t.Setenv("STEPUP_HG_SECRET", "hm4c")
	t.Setenv("STEPUP_HG_ACCOUNT", "acme")
	srv, got := hgFake(t)
	g := &HTTPGateway{
		URL:        srv.URL + "/v1/{env.STEPUP_HG_ACCOUNT}/messages",
		Headers:    map[string]string{"Authorization": "Bearer {env.STEPUP_HG_KEY}", "X-Ref": "{{.Ref}}"},
		Body:       `{"account": "{env.STEPUP_HG_ACCOUNT}", "to": {{json .To}}, "text": {{json .Text}}}`,
		HMACHeader: "X-Signature",
		HMACSecret: "{env.STEPUP_HG_SECRET}",
	}
	if err := g.Provision(twContext(t)); err != nil {
		t.Fatal(err)
	}
	r, err := g.Send(t.Context(), otp.Message{To: "+819012345678", Body: "確認コード: \"739214\"", Ref: "c-1"})
	if err != nil || r != (otp.Receipt{Gateway: "http", Status: otp.DeliveryQueued}) {
		t.Fatalf("send: %+v %v", r, err)
	}
	s := <-got
	if s.path != "/v1/acme/messages" {
		t.Errorf("path %q", s.path)
	}
	if s.header.Get("Authorization") != "Bearer k3y" || s.header.Get("X-Ref") != "c-1" {
		t.Errorf("headers %v", s.header)
	}
	const want = `{"account": "acme", "to": "+819012345678", "text": "確認コード: \"739214\""}`
	if string(s.body) != want {
		t.Errorf("body %s, want %s", s.body, want)
	}
	mac := hmac.New(sha256.New, []byte("hm4c"))
	mac.Write(s.body)
	if s.header.Get("X-Signature") != hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("X-Signature %q is not the HMAC of the body under the expanded secret", s.header.Get("X-Signature"))
	}
}

func TestHTTPGatewayProvisionRefuses(t *testing.T) {
	t.Setenv("STEPUP_HG_SET", "x")
	cases := []struct {
		name string
		g    HTTPGateway
		err  string
	}{
		{"an unset environment variable as the HMAC secret",
			HTTPGateway{URL: "https://h/send", HMACHeader: "X-Signature", HMACSecret: "{env.STEPUP_HG_UNSET}"},
			"http gateway hmac_header secret: evaluated placeholder {env.STEPUP_HG_UNSET} is empty"},
		{"an unknown placeholder as the HMAC secret",
			HTTPGateway{URL: "https://h/send", HMACHeader: "X-Signature", HMACSecret: "{hg.secret}"},
			"unrecognized placeholder {hg.secret}"},
		{"an unset environment variable in a header",
			HTTPGateway{URL: "https://h/send", Headers: map[string]string{"Authorization": "Bearer {env.STEPUP_HG_UNSET}"}},
			"http gateway header Authorization: evaluated placeholder {env.STEPUP_HG_UNSET} is empty"},
		{"an unset environment variable in the url",
			HTTPGateway{URL: "https://{env.STEPUP_HG_UNSET}/send"},
			"http gateway url: evaluated placeholder {env.STEPUP_HG_UNSET} is empty"},
		{"a template error, with its line",
			HTTPGateway{URL: "https://h/send", Body: "{\n\"to\": {{json .To}\n}"},
			"template: body:2:"},
		{"a JSON body that the text would break",
			HTTPGateway{URL: "https://{env.STEPUP_HG_SET}/send", Body: `{"text": "{{.Text}}"}`},
			"does not render valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.Provision(twContext(t))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// TestHTTPGatewayAndTwilioNestInTheDirective parses both gateways where
// users write them: as the directive's gateway, and inside a failover, each
// followed by more options that must not be taken as theirs.
func TestHTTPGatewayAndTwilioNestInTheDirective(t *testing.T) {
	t.Parallel()
	input := "sms_stepup {\n" +
		"\tidentity {http.auth.user.id}\n" +
		"\tphone {http.request.header.X-Phone}\n" +
		"\tgateway failover {\n" +
		"\t\ttwilio {\n" +
		"\t\t\taccount_sid AC01\n" +
		"\t\t\tauth_token {env.TWILIO_AUTH_TOKEN}\n" +
		"\t\t\tfrom +815012345678\n" +
		"\t\t}\n" +
		"\t\thttp https://sms.example.jp/send {\n" +
		"\t\t\theader X-Key {env.SMS_KEY}\n" +
		"\t\t\tbody `{\"to\": {{json .To}}}`\n" +
		"\t\t}\n" +
		"\t\tfailure_threshold 2\n" +
		"\t}\n" +
		"\tservice_name Example\n" +
		"}\n"
	h := new(Handler)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	if h.ServiceName != "Example" {
		t.Errorf("service_name %q: the option after the gateway was lost", h.ServiceName)
	}
	var failover struct {
		Type             string            `json:"type"`
		Gateways         []json.RawMessage `json:"gateways"`
		FailureThreshold int               `json:"failure_threshold"`
	}
	if err := json.Unmarshal(h.GatewayRaw, &failover); err != nil {
		t.Fatal(err)
	}
	if failover.Type != "failover" || len(failover.Gateways) != 2 || failover.FailureThreshold != 2 {
		t.Fatalf("gateway %s", h.GatewayRaw)
	}
	const wantTwilio = `{"account_sid":"AC01","auth_token":"{env.TWILIO_AUTH_TOKEN}","from":"+815012345678","type":"twilio"}`
	const wantHTTP = `{"url":"https://sms.example.jp/send","headers":{"X-Key":"{env.SMS_KEY}"},"body":"{\"to\": {{json .To}}}","type":"http"}`
	hgSameJSON(t, "twilio", failover.Gateways[0], wantTwilio)
	hgSameJSON(t, "http", failover.Gateways[1], wantHTTP)
}

// hgSameJSON compares JSON by meaning, not by key order.
func hgSameJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s\n got %s\nwant %s", what, got, want)
	}
}

// hgReceiptEnv is a handler that sends through the http gateway gateway
// (its JSON, with the provider's URL as {{provider}}) to a fake provider,
// which hands each request to check and answers 202. Reports come to
// https://example.com/_stepup/receipt/.
func hgReceiptEnv(t *testing.T, gateway string, check func(r *http.Request, body []byte) error) *htEnv {
	t.Helper()
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := check(r, body); err != nil {
			t.Errorf("fake provider: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(provider.Close)
	raw := json.RawMessage(strings.ReplaceAll(gateway, "{{provider}}", provider.URL))
	e := htNew(t, nil, func(h *Handler) { h.GatewayRaw, h.ReceiptsURL = raw, "https://example.com" })
	svc, err := e.h.newService(e.h.service.Config(), e.store)
	if err != nil {
		t.Fatal(err)
	}
	e.h.service = svc
	return e
}

// hgSent is what the fake provider was asked to send: the receipt URL's
// path and the text.
type hgSent struct{ path, text string }

// hgSend asks for a code through the http gateway and returns what the
// provider got.
func hgSend(t *testing.T, b *htBrowser, sent <-chan hgSent) hgSent {
	t.Helper()
	if w, body := b.postSend(); w.Code != http.StatusSeeOther {
		t.Fatalf("send: %d\n%s", w.Code, body)
	}
	return <-sent
}

// hgReceiptURL checks that u is a receipt URL of the http gateway under
// this site, and returns its path.
func hgReceiptURL(u string) (string, error) {
	path, ok := strings.CutPrefix(u, "https://example.com")
	if !ok || !strings.HasPrefix(path, "/_stepup/receipt/http/") || len(path) < len("/_stepup/receipt/http/")+20 {
		return "", fmt.Errorf("receipt URL %q: want https://example.com/_stepup/receipt/http/<token>", u)
	}
	return path, nil
}

// hgReport makes the provider's callback to path, as the provider would:
// no identity, no cookie.
func hgReport(t *testing.T, e *htEnv, method, path, contentType, body string) int {
	t.Helper()
	r := e.browser("").request(method, path, nil, "Content-Type: "+contentType)
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	w := httptest.NewRecorder()
	err := e.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		return errors.New("a report reached the next handler")
	}))
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	if err != nil {
		t.Fatal(err)
	}
	return w.Code
}

func TestHTTPGatewayReceiptsEndToEnd(t *testing.T) {
	t.Parallel()
	page := func(b *htBrowser) string {
		_, body := b.get("/_stepup/?r=%2Fsettings")
		return body
	}

	t.Run("a provider that takes a GET and reports with a GET query: delivered", func(t *testing.T) {
		t.Parallel()
		sent := make(chan hgSent, 1)
		e := hgReceiptEnv(t, `{"type": "http", "method": "GET",
			"url": "{{provider}}/send?to={{urlquery .To}}&text={{urlquery .Text}}&dlr={{urlquery .ReceiptURL}}",
			"receipt": {"format": "form", "status": "stat", "delivered": ["DELIVRD"], "failed": ["UNDELIV"],
				"sent": ["ENROUTE"], "reference": "id", "error": "err"}}`,
			func(r *http.Request, body []byte) error {
				q := r.URL.Query()
				if r.Method != http.MethodGet || r.URL.Path != "/send" || len(body) != 0 || q.Get("to") != htNumber || !htCodeRE.MatchString(q.Get("text")) {
					return fmt.Errorf("%s %s with %d bytes: want GET /send with to and text in the query", r.Method, r.URL.Path, len(body))
				}
				path, err := hgReceiptURL(q.Get("dlr"))
				sent <- hgSent{path, q.Get("text")}
				return err
			})
		b := e.browser("gina")
		got := hgSend(t, b, sent)
		path, code := got.path, htCodeRE.FindStringSubmatch(got.text)[1]
		if strings.Contains(page(b), `id="delivery"`) {
			t.Fatal("the code page shows a delivery status before any report")
		}
		if status := hgReport(t, e, http.MethodGet, path+"?id=m-1&stat=ENROUTE", "", ""); status != http.StatusOK {
			t.Fatalf("report on its way: %d", status)
		}
		if strings.Contains(page(b), `id="delivery"`) {
			t.Fatal("a message on its way shows as delivered or failed")
		}
		if status := hgReport(t, e, http.MethodGet, path+"?id=m-1&stat=BOUNCED", "", ""); status != http.StatusForbidden {
			t.Fatalf("a report with an unlisted status: %d, want 403", status)
		}
		if status := hgReport(t, e, http.MethodGet, path+"?id=m-1&stat=DELIVRD&err=000", "", ""); status != http.StatusOK {
			t.Fatalf("report delivered: %d", status)
		}
		if body := page(b); !strings.Contains(body, "The SMS was delivered to your phone.") {
			t.Fatalf("the code page does not say the SMS was delivered:\n%s", body)
		}
		if status := hgReport(t, e, http.MethodGet, path[:len(path)-4]+"AAAA?stat=UNDELIV", "", ""); status != http.StatusNotFound {
			t.Fatalf("a report for a token we did not make: %d, want 404", status)
		}
		if w, _ := b.verify(code); w.Code != http.StatusSeeOther {
			t.Fatalf("the code after its reports: %d", w.Code)
		}
	})

	t.Run("a provider that takes JSON and reports with JSON: failed", func(t *testing.T) {
		t.Parallel()
		sent := make(chan hgSent, 1)
		e := hgReceiptEnv(t, `{"type": "http", "url": "{{provider}}/v1/messages",
			"headers": {"Authorization": "Bearer k3y"},
			"body": "{\"to\": {{json .To}}, \"text\": {{json .Text}}, \"ref\": {{json .Ref}}, \"callback_url\": {{json .ReceiptURL}}}",
			"receipt": {"format": "json", "status": "event.status", "delivered": ["delivered"],
				"failed": ["undeliverable", "expired"], "reference": "event.message_id", "error": "event.error.code"}}`,
			func(r *http.Request, body []byte) error {
				var m struct {
					To, Text, Ref string
					Callback      string `json:"callback_url"`
				}
				if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" || r.Header.Get("Content-Type") != "application/json" ||
					r.Header.Get("Authorization") != "Bearer k3y" {
					return fmt.Errorf("%s %s %v: want a POST to /v1/messages with JSON and the key", r.Method, r.URL.Path, r.Header)
				}
				if err := json.Unmarshal(body, &m); err != nil || m.To != htNumber || !htCodeRE.MatchString(m.Text) || m.Ref == "" {
					return fmt.Errorf("body %s: want to, text and ref", body)
				}
				path, err := hgReceiptURL(m.Callback)
				sent <- hgSent{path, m.Text}
				return err
			})
		b := e.browser("jill")
		path := hgSend(t, b, sent).path
		if status := hgReport(t, e, http.MethodPost, path, "application/json", `{"event": {"status": "delivered"`); status != http.StatusForbidden {
			t.Fatalf("a report that is not JSON: %d, want 403", status)
		}
		report := `{"event": {"message_id": "4a1f-77", "status": "UNDELIVERABLE", "error": {"code": "E42"}}}`
		if status := hgReport(t, e, http.MethodPost, path, "application/json", report); status != http.StatusOK {
			t.Fatalf("report failed: %d", status)
		}
		if body := page(b); !strings.Contains(body, "The SMS could not be delivered.") {
			t.Fatalf("the code page does not say the SMS failed:\n%s", body)
		}
	})

	t.Run("without receipt, reports to the http gateway's receipt URL find nothing", func(t *testing.T) {
		t.Parallel()
		sent := make(chan hgSent, 1)
		e := hgReceiptEnv(t, `{"type": "http", "url": "{{provider}}/send", "body": "{\"to\": {{json .To}}, \"text\": {{json .Text}}}"}`,
			func(*http.Request, []byte) error { sent <- hgSent{}; return nil })
		hgSend(t, e.browser("kim"), sent)
		if status := hgReport(t, e, http.MethodGet, "/_stepup/receipt/http/anything?stat=DELIVRD", "", ""); status != http.StatusNotFound {
			t.Fatalf("report: %d, want 404", status)
		}
	})
}

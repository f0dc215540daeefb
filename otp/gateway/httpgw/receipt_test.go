package httpgw_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpgw"
)

const receiptURL = "https://example.com/_stepup/receipt/http/r3ceiptT0ken"

// receiptGateway is a gateway that passes .ReceiptURL and reads reports as
// rc says, and the parser it offers.
func receiptGateway(t *testing.T, rc httpgw.ReceiptConfig) otp.ReceiptParser {
	t.Helper()
	g := newGateway(t, httpgw.Config{URL: "https://sms.example/send",
		Body: `{"to": {{json .To}}, "text": {{json .Text}}, "callback": {{json .ReceiptURL}}}`, Receipt: &rc})
	p := g.Capabilities().Receipts["http"]
	if p == nil {
		t.Fatalf("capabilities %+v: no receipt parser under the gateway's name", g.Capabilities())
	}
	return p
}

func formReport(method, query, body string) *http.Request {
	r := httptest.NewRequest(method, receiptURL+query, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r
}

func jsonReport(method, body string) *http.Request {
	r := httptest.NewRequest(method, receiptURL, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestHttpgwReceiptFromAForm(t *testing.T) {
	t.Parallel()
	p := receiptGateway(t, httpgw.ReceiptConfig{Format: httpgw.ReceiptForm, Status: "stat", Reference: "msgid", Error: "err",
		Delivered: []string{"DELIVRD"}, Failed: []string{"UNDELIV", "EXPIRED", "REJECTD"}, Sent: []string{"ACCEPTD", "ENROUTE"}})
	cases := []struct {
		name string
		r    *http.Request
		want otp.Receipt
		err  string
	}{
		{"a POSTed delivery report, with the reference", formReport(http.MethodPost, "", "msgid=abc-123&stat=DELIVRD&err=000"),
			otp.Receipt{Gateway: "http", ID: "abc-123", Status: otp.DeliveryDelivered, Error: "000"}, ""},
		{"a report by GET in the query string, as Kannel-like providers send", formReport(http.MethodGet, "?stat=UNDELIV&err=E51&msgid=m1", ""),
			otp.Receipt{Gateway: "http", ID: "m1", Status: otp.DeliveryFailed, Error: "E51"}, ""},
		{"a status in another case is the same status", formReport(http.MethodPost, "", "stat=delivrd"),
			otp.Receipt{Gateway: "http", Status: otp.DeliveryDelivered}, ""},
		{"a status on its way is sent", formReport(http.MethodPost, "", "stat=ENROUTE"),
			otp.Receipt{Gateway: "http", Status: otp.DeliverySent}, ""},
		{"a reference that is free text is not kept for the log", formReport(http.MethodPost, "", "stat=EXPIRED&msgid=to+%2B819012345678&err=no+route"),
			otp.Receipt{Gateway: "http", Status: otp.DeliveryFailed}, ""},
		{"a report without the status field is refused", formReport(http.MethodPost, "", "msgid=abc"), otp.Receipt{}, `no status at "stat"`},
		{"an unlisted status is refused, and named", formReport(http.MethodPost, "", "stat=BOUNCED"), otp.Receipt{}, `status "BOUNCED" is none of`},
		{"an unlisted status that could be a number is not repeated", formReport(http.MethodPost, "", "stat=819012345678"), otp.Receipt{}, "not shown"},
		{"a status in the query and again in the body is ambiguous", formReport(http.MethodPost, "?stat=DELIVRD", "stat=UNDELIV"), otp.Receipt{}, `field "stat" is given 2 times`},
		{"a PUT is refused", formReport(http.MethodPut, "", "stat=DELIVRD"), otp.Receipt{}, "method PUT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.ParseReceipt(tc.r, receiptURL)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v %v, want an error containing %q", got, err, tc.err)
				}
				if strings.Contains(err.Error(), "9012345678") {
					t.Errorf("error %q repeats a number", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestHttpgwReceiptFromJSON(t *testing.T) {
	t.Parallel()
	p := receiptGateway(t, httpgw.ReceiptConfig{Format: httpgw.ReceiptJSON, Status: "results.0.status.code",
		Reference: "results.0.message_id", Error: "results.0.error.id",
		Delivered: []string{"3"}, Failed: []string{"5", "false"}, Sent: []string{"1"}})
	cases := []struct {
		name string
		r    *http.Request
		want otp.Receipt
		err  string
	}{
		{"a nested numeric status, with the reference and error", jsonReport(http.MethodPost,
			`{"results": [{"message_id": "4a1f-77", "status": {"code": 5}, "error": {"id": 27}}]}`),
			otp.Receipt{Gateway: "http", ID: "4a1f-77", Status: otp.DeliveryFailed, Error: "27"}, ""},
		{"a status given as a string", jsonReport(http.MethodPost, `{"results": [{"status": {"code": "3"}}]}`),
			otp.Receipt{Gateway: "http", Status: otp.DeliveryDelivered}, ""},
		{"a boolean status", jsonReport(http.MethodPut, `{"results": [{"status": {"code": false}}]}`),
			otp.Receipt{Gateway: "http", Status: otp.DeliveryFailed}, ""},
		{"a reference that is an object is not kept", jsonReport(http.MethodPost, `{"results": [{"status": {"code": 1}, "message_id": {"x": 1}}]}`),
			otp.Receipt{Gateway: "http", Status: otp.DeliverySent}, ""},
		{"a missing array element is no status", jsonReport(http.MethodPost, `{"results": []}`), otp.Receipt{}, `no status at "results.0.status.code"`},
		{"a null status is no status", jsonReport(http.MethodPost, `{"results": [{"status": {"code": null}}]}`), otp.Receipt{}, "no status"},
		{"an object where the status should be is refused", jsonReport(http.MethodPost, `{"results": [{"status": {"code": {"v": 3}}}]}`), otp.Receipt{}, "holds an object or an array"},
		{"a body that is not JSON is refused", jsonReport(http.MethodPost, `stat=3`), otp.Receipt{}, "not JSON"},
		{"two JSON values are refused", jsonReport(http.MethodPost, `{"results": [{"status": {"code": 5}}]} {"results": [{"status": {"code": 3}}]}`), otp.Receipt{}, "more than one JSON value"},
		{"a GET is refused", jsonReport(http.MethodGet, ""), otp.Receipt{}, "method GET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.ParseReceipt(tc.r, receiptURL)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v %v, want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestHttpgwReceiptSettingsAreChecked(t *testing.T) {
	t.Parallel()
	const u = "https://sms.example/send"
	const withURL = `{"to": {{json .To}}, "callback": {{json .ReceiptURL}}}`
	good := httpgw.ReceiptConfig{Format: httpgw.ReceiptForm, Status: "s", Delivered: []string{"ok"}, Failed: []string{"ko"}}
	with := func(change func(*httpgw.ReceiptConfig)) *httpgw.ReceiptConfig {
		rc := good
		change(&rc)
		return &rc
	}
	cases := []struct {
		name string
		cfg  httpgw.Config
		err  string
	}{
		{"templates that pass .ReceiptURL with nothing to read the reports",
			httpgw.Config{URL: u, Body: withURL}, "no receipt setting says how to read"},
		{".ReceiptURL in the URL with nothing to read the reports",
			httpgw.Config{URL: u + "?cb={{urlquery .ReceiptURL}}"}, "no receipt setting says how to read"},
		{"a receipt setting with no template passing .ReceiptURL",
			httpgw.Config{URL: u, Body: `{"to": {{json .To}}}`, Receipt: &good}, "no template passes {{.ReceiptURL}}"},
		{"an unknown format", httpgw.Config{URL: u, Body: withURL, Receipt: with(func(rc *httpgw.ReceiptConfig) { rc.Format = "xml" })},
			`format "xml": expected form or json`},
		{"no status location", httpgw.Config{URL: u, Body: withURL, Receipt: with(func(rc *httpgw.ReceiptConfig) { rc.Status = "" })},
			"no status"},
		{"a JSON path with an empty step", httpgw.Config{URL: u, Body: withURL, Receipt: with(func(rc *httpgw.ReceiptConfig) {
			rc.Format, rc.Reference = httpgw.ReceiptJSON, "data..id"
		})}, `reference "data..id": expected a JSON path`},
		{"no failed values", httpgw.Config{URL: u, Body: withURL, Receipt: with(func(rc *httpgw.ReceiptConfig) { rc.Failed = nil })},
			"delivered and those that mean failed"},
		{"a value in two lists", httpgw.Config{URL: u, Body: withURL, Receipt: with(func(rc *httpgw.ReceiptConfig) { rc.Sent = []string{"OK"} })},
			`status value "OK" is listed as delivered and as sent`},
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
	t.Run("without a receipt setting the gateway offers no receipts", func(t *testing.T) {
		t.Parallel()
		g := newGateway(t, httpgw.Config{URL: u})
		if c := g.Capabilities(); c.Receipts != nil || c.Voice != nil || c.Health != nil {
			t.Fatalf("capabilities %+v", c)
		}
	})
}

package kannel_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/kannel"
)

const (
	number   = "+819012345678"
	password = "s3cret-Pa55"
	code     = "739214"
	english  = "Example code: " + code + "\nIt expires in 5 min."
	japanese = "確認コード: " + code
)

func newGateway(t *testing.T, rawURL string, dlr bool, timeout time.Duration) *kannel.Gateway {
	t.Helper()
	g, err := kannel.New(kannel.Config{URL: rawURL, Username: "stepup", Password: password, From: "Example", DLR: dlr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// assertNoSecrets fails when err's text carries the password, the text or
// the code.
func assertNoSecrets(t *testing.T, err error, body string) {
	t.Helper()
	s := err.Error()
	for _, secret := range []string{password, url.QueryEscape(password), body, url.QueryEscape(body), code} {
		if strings.Contains(s, secret) {
			t.Errorf("error %q contains %q", s, secret)
		}
	}
}

func gatewayError(t *testing.T, err error) *otp.GatewayError {
	t.Helper()
	var ge *otp.GatewayError
	if !errors.As(err, &ge) {
		t.Fatalf("error %v (%T) is not a *otp.GatewayError", err, err)
	}
	return ge
}

func TestKannelSendBuildsKannelsQuery(t *testing.T) {
	t.Parallel()
	base := url.Values{"username": {"stepup"}, "password": {password}, "from": {"Example"}, "to": {number}}
	with := func(extra url.Values) url.Values {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		for k, v := range extra {
			q[k] = v
		}
		return q
	}
	for _, tc := range []struct {
		name string
		dlr  bool
		msg  otp.Message
		want url.Values
	}{
		{"an English text goes as GSM 7-bit, with no coding",
			false, otp.Message{To: number, Body: english},
			with(url.Values{"text": {english}})},
		{"a Japanese text goes as UCS-2 from UTF-8",
			false, otp.Message{To: number, Body: japanese},
			with(url.Values{"text": {japanese}, "coding": {"2"}, "charset": {"UTF-8"}})},
		{"GSM extension characters need no UCS-2",
			false, otp.Message{To: number, Body: "Code {123456} costs €0 [x] ~ | ^ \\"},
			with(url.Values{"text": {"Code {123456} costs €0 [x] ~ | ^ \\"}})},
		{"accented letters of the GSM alphabet need no UCS-2",
			false, otp.Message{To: number, Body: "Ça: 0 € à Zürich, Øre, España, É"},
			with(url.Values{"text": {"Ça: 0 € à Zürich, Øre, España, É"}})},
		{"one letter outside the GSM alphabet makes it UCS-2",
			false, otp.Message{To: number, Body: "Ça coûte 0 €"},
			with(url.Values{"text": {"Ça coûte 0 €"}, "coding": {"2"}, "charset": {"UTF-8"}})},
		{"an emoji needs UCS-2",
			false, otp.Message{To: number, Body: "code 123456 🔑"},
			with(url.Values{"text": {"code 123456 🔑"}, "coding": {"2"}, "charset": {"UTF-8"}})},
		{"receipts on and a receipt URL ask Kannel for every report type",
			true, otp.Message{To: number, Body: english, ReceiptBase: "https://example.com/stepup/receipts", ReceiptToken: "tok123"},
			with(url.Values{"text": {english}, "dlr-mask": {"31"}, "dlr-url": {"https://example.com/stepup/receipts/kannel/tok123?type=%d"}})},
		{"a % in the receipt URL is doubled so Kannel keeps it",
			true, otp.Message{To: number, Body: english, ReceiptBase: "https://example.com/r%C3%A9", ReceiptToken: "t"},
			with(url.Values{"text": {english}, "dlr-mask": {"31"}, "dlr-url": {"https://example.com/r%%C3%%A9/kannel/t?type=%d"}})},
		{"receipts on but no receipt URL ask for none",
			true, otp.Message{To: number, Body: english},
			with(url.Values{"text": {english}})},
		{"a receipt URL but receipts off ask for none",
			false, otp.Message{To: number, Body: english, ReceiptBase: "https://example.com/r", ReceiptToken: "tok123"},
			with(url.Values{"text": {english}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			type seen struct {
				method, path, rawQuery string
				query                  url.Values
			}
			got := make(chan seen, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.URL.Query()}
				w.WriteHeader(http.StatusAccepted)
				io.WriteString(w, "0: Accepted for delivery")
			}))
			defer srv.Close()
			g := newGateway(t, srv.URL+"/cgi-bin/sendsms", tc.dlr, time.Second)
			receipt, err := g.Send(context.Background(), tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if receipt != (otp.Receipt{Gateway: "kannel", Status: otp.DeliveryQueued}) {
				t.Errorf("receipt %+v", receipt)
			}
			r := <-got
			if r.method != http.MethodGet || r.path != "/cgi-bin/sendsms" {
				t.Errorf("request %s %s, want GET /cgi-bin/sendsms", r.method, r.path)
			}
			if !reflect.DeepEqual(r.query, tc.want) {
				t.Errorf("query\n got %v\nwant %v", r.query, tc.want)
			}
			// An unencoded + would reach Kannel as a space.
			if !strings.Contains(r.rawQuery, "to=%2B819012345678") {
				t.Errorf("raw query %q does not carry to=%%2B819012345678", r.rawQuery)
			}
		})
	}
}

func TestKannelSendLeavesFromToKannelWhenUnset(t *testing.T) {
	t.Parallel()
	got := make(chan url.Values, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "0: Accepted for delivery")
	}))
	defer srv.Close()
	g, err := kannel.New(kannel.Config{URL: srv.URL, Username: "stepup", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Send(context.Background(), otp.Message{To: number, Body: english}); err != nil {
		t.Fatal(err)
	}
	if q := <-got; q.Has("from") {
		t.Errorf("from sent as %q though not configured", q.Get("from"))
	}
}

func TestKannelSendReadsKannelsAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   string
		// wantKind 0: accepted.
		wantKind   otp.ErrorKind
		wantReason string
	}{
		{"202 accepted for delivery is queued", 202, "0: Accepted for delivery", 0, ""},
		{"202 queued for later delivery is queued", 202, "3: Queued for later delivery", 0, ""},
		{"200 accepted is queued too", 200, "0: Accepted for delivery", 0, ""},
		{"immediate-sendsms-reply's Sent. is queued", 202, "Sent.", 0, ""},
		{"403 wrong password was not sent", 403, "Authorization failed for sendsms", otp.NotSent, "auth"},
		{"403 not routable was not sent", 403, "Not routable. Do not try again.", otp.NotSent, "rejected"},
		{"503 temporal failure was not sent", 503, "Temporal failure, try again later.", otp.NotSent, "server_error"},
		{"500 sending failed was not sent", 500, "Sending failed.", otp.NotSent, "server_error"},
		{"400 denied receiver is an invalid number", 400, "Number(s) has/have been denied by white- and/or black-lists.", otp.Rejected, "invalid_number"},
		{"400 empty receiver is an invalid number", 400, "Empty receiver number not allowed, rejected", otp.Rejected, "invalid_number"},
		{"400 invalid destination is an invalid number", 400, "Invalid destination", otp.Rejected, "invalid_number"},
		{"400 misformed field was not sent, another gateway may", 400, "Coding field misformed, rejected", otp.NotSent, "rejected"},
		{"429 from a proxy is rate limited", 429, "slow down", otp.NotSent, "rate_limited"},
		{"504 from a proxy may have been queued", 504, "Gateway Timeout", otp.Unknown, "no_answer"},
		{"502 from a proxy may have been queued", 502, "Bad Gateway", otp.Unknown, "no_answer"},
		{"404 wrong path was not sent", 404, "Not found", otp.NotSent, "rejected"},
		{"a 200 in words Kannel never uses may have been queued", 200, "<html>It works!</html>", otp.Unknown, "server_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			g := newGateway(t, srv.URL, true, time.Second)
			receipt, err := g.Send(context.Background(), otp.Message{To: number, Body: english})
			if tc.wantKind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if receipt != (otp.Receipt{Gateway: "kannel", Status: otp.DeliveryQueued}) {
					t.Errorf("receipt %+v", receipt)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; receipt %+v", receipt)
			}
			ge := gatewayError(t, err)
			if ge.Gateway != "kannel" || ge.Kind != tc.wantKind || ge.Reason != tc.wantReason {
				t.Errorf("got %s %s %s, want kannel %s %s", ge.Gateway, ge.Kind, ge.Reason, tc.wantKind, tc.wantReason)
			}
			if !strings.Contains(err.Error(), tc.body) {
				t.Errorf("error %q does not quote Kannel's answer %q", err, tc.body)
			}
			assertNoSecrets(t, err, english)
		})
	}
}

func TestKannelSendWithholdsAnAnswerThatRepeatsTheRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		echo func(r *http.Request) string
	}{
		{"the raw query", func(r *http.Request) string { return "bad request: " + r.URL.RawQuery }},
		{"the decoded query", func(r *http.Request) string {
			q := r.URL.Query()
			return "user " + q.Get("username") + " pass " + q.Get("password")
		}},
		{"the code alone", func(r *http.Request) string { return "cannot send code " + code }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, tc.echo(r))
			}))
			defer srv.Close()
			g := newGateway(t, srv.URL, false, time.Second)
			_, err := g.Send(context.Background(), otp.Message{To: number, Body: english})
			if err == nil {
				t.Fatal("no error")
			}
			assertNoSecrets(t, err, english)
			if !strings.Contains(err.Error(), "withheld") {
				t.Errorf("error %q does not say the answer was withheld", err)
			}
		})
	}
}

// A server that reads the whole request and then never answers: Kannel may
// have queued the message, so nothing else may be tried.
func TestKannelSendWithoutAnAnswerIsUnknown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	read := make(chan *http.Request, 1)
	release := make(chan struct{})
	defer close(release)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		read <- req
		<-release
	}()
	g := newGateway(t, "http://"+l.Addr().String()+"/cgi-bin/sendsms", false, 300*time.Millisecond)
	start := time.Now()
	_, err = g.Send(context.Background(), otp.Message{To: number, Body: japanese})
	if err == nil {
		t.Fatal("no error")
	}
	select {
	case req := <-read:
		if req.URL.Query().Get("text") != japanese {
			t.Errorf("server read text %q", req.URL.Query().Get("text"))
		}
	default:
		t.Fatal("the server never read the request")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Send took %s with a 300ms timeout", took)
	}
	ge := gatewayError(t, err)
	if ge.Kind != otp.Unknown || ge.Reason != "no_answer" {
		t.Errorf("got %s %s, want unknown no_answer", ge.Kind, ge.Reason)
	}
	// Go's client quotes the URL, query included, in its errors.
	assertNoSecrets(t, err, japanese)
	if !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("error %q does not say which server failed", err)
	}
}

// refusingAddr is a loopback address that refuses connections: a socket
// bound but not listening. Unlike a closed listener's port, it cannot be
// taken by a test running at the same time.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

func TestKannelSendToAClosedPortIsNotSent(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "http://"+refusingAddr(t)+"/cgi-bin/sendsms", false, time.Second)
	_, err := g.Send(context.Background(), otp.Message{To: number, Body: english})
	if err == nil {
		t.Fatal("no error")
	}
	ge := gatewayError(t, err)
	if ge.Kind != otp.NotSent || ge.Reason != "unreachable" {
		t.Errorf("got %s %s, want not_sent unreachable", ge.Kind, ge.Reason)
	}
	assertNoSecrets(t, err, english)
}

func TestKannelSendRefusesANumberThatIsNotE164(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("Kannel was called")
	}))
	defer srv.Close()
	g := newGateway(t, srv.URL, false, time.Second)
	for _, to := range []string{"", "09012345678", "+81 90 1234 5678", "+0123456", "+1234567890123456", "+81901234567x"} {
		_, err := g.Send(context.Background(), otp.Message{To: to, Body: english})
		if err == nil {
			t.Errorf("to %q: no error", to)
			continue
		}
		if ge := gatewayError(t, err); ge.Kind != otp.Rejected || ge.Reason != "invalid_number" {
			t.Errorf("to %q: got %s %s, want rejected invalid_number", to, ge.Kind, ge.Reason)
		}
	}
}

func TestKannelSendAfterTheContextEndedSendsNothing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("Kannel was called")
	}))
	defer srv.Close()
	g := newGateway(t, srv.URL, false, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := g.Send(ctx, otp.Message{To: number, Body: english})
	if err == nil {
		t.Fatal("no error")
	}
	if kind := otp.ErrorKindOf(err); kind != otp.NotSent {
		t.Errorf("kind %s, want not_sent", kind)
	}
}

func TestKannelNewChecksTheConfig(t *testing.T) {
	t.Parallel()
	good := kannel.Config{URL: "http://127.0.0.1:13013/cgi-bin/sendsms", Username: "u", Password: "p"}
	for _, tc := range []struct {
		name   string
		change func(*kannel.Config)
		want   string // "" means valid
	}{
		{"a plain http URL is fine", func(*kannel.Config) {}, ""},
		{"https is fine", func(c *kannel.Config) { c.URL = "https://sms.example.com/cgi-bin/sendsms" }, ""},
		{"a name of letters, digits and dashes is fine", func(c *kannel.Config) { c.Name = "kannel-tokyo_2" }, ""},
		{"no URL", func(c *kannel.Config) { c.URL = "" }, "url"},
		{"a URL without scheme", func(c *kannel.Config) { c.URL = "127.0.0.1:13013/cgi-bin/sendsms" }, "url"},
		{"an ftp URL", func(c *kannel.Config) { c.URL = "ftp://127.0.0.1/x" }, "url"},
		{"a URL without host", func(c *kannel.Config) { c.URL = "http:///cgi-bin/sendsms" }, "url"},
		{"a URL with the password in its query", func(c *kannel.Config) { c.URL += "?password=p" }, "not in the URL"},
		{"a URL with user info", func(c *kannel.Config) { c.URL = "http://u:p@127.0.0.1:13013/cgi-bin/sendsms" }, "not in the URL"},
		{"no username", func(c *kannel.Config) { c.Username = "" }, "username is required"},
		{"no password", func(c *kannel.Config) { c.Password = "" }, "password is required"},
		{"a negative timeout", func(c *kannel.Config) { c.Timeout = -time.Second }, "timeout"},
		{"a name with a slash", func(c *kannel.Config) { c.Name = "kannel/x" }, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := good
			tc.change(&cfg)
			g, err := kannel.New(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; gateway %+v", g)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestKannelNameDefaultsToKannel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ configured, want string }{{"", "kannel"}, {"kannel2", "kannel2"}} {
		g, err := kannel.New(kannel.Config{URL: "http://127.0.0.1:13013/", Username: "u", Password: "p", Name: tc.configured})
		if err != nil {
			t.Fatal(err)
		}
		if g.Name() != tc.want {
			t.Errorf("name %q configured: Name() = %q, want %q", tc.configured, g.Name(), tc.want)
		}
	}
}

func TestKannelParseReceiptMapsKannelsReportTypes(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "http://127.0.0.1:13013/cgi-bin/sendsms", true, time.Second)
	for _, tc := range []struct {
		method, query string
		want          otp.DeliveryStatus // "" means an error
	}{
		{"GET", "type=1", otp.DeliveryDelivered},
		{"GET", "type=2", otp.DeliveryFailed},
		{"GET", "type=4", otp.DeliveryQueued},
		{"GET", "type=8", otp.DeliverySent},
		{"GET", "type=16", otp.DeliveryFailed},
		{"GET", "", ""},
		{"GET", "type=", ""},
		{"GET", "type=3", ""},
		{"GET", "type=9", ""},
		{"GET", "type=%25d", ""},
		{"GET", "type=1&type=2", ""},
		{"POST", "type=1", ""},
	} {
		r := httptest.NewRequest(tc.method, "/stepup/receipts/kannel/tok123?"+tc.query, nil)
		got, err := g.ParseReceipt(r, "https://example.com/stepup/receipts/kannel/tok123")
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s ?%s: status %q, want an error", tc.method, tc.query, got.Status)
			}
			continue
		}
		if err != nil || got != (otp.Receipt{Gateway: "kannel", Status: tc.want}) {
			t.Errorf("%s ?%s: got %+v, %v; want %q", tc.method, tc.query, got, err, tc.want)
		}
	}
}

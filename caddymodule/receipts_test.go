package caddymodule

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// rcGateway is a voice-capable gateway that takes delivery reports signed
// with a shared secret, recording every message and call it is handed; and
// it can be told to fail in each of the ways a real provider does.
type rcGateway struct {
	mu    sync.Mutex
	sms   []otp.Message
	calls []otp.Message
	fail  error
}

func (g *rcGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sms_stepup.gateways.rcfake", New: func() caddy.Module { return new(rcGateway) }}
}

func (g *rcGateway) Send(_ context.Context, m otp.Message) (otp.Receipt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sms = append(g.sms, m)
	return otp.Receipt{Gateway: "rcfake"}, g.fail
}

func (g *rcGateway) Call(_ context.Context, m otp.Message) (otp.Receipt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, m)
	return otp.Receipt{Gateway: "rcfake"}, g.fail
}

func (g *rcGateway) ParseReceipt(r *http.Request, receiptURL string) (otp.Receipt, error) {
	if r.Header.Get("X-Fake-Signature") != "ok" || !strings.HasSuffix(receiptURL, r.URL.Path) {
		return otp.Receipt{}, errBadSignature
	}
	return otp.Receipt{Gateway: "rcfake", Status: otp.DeliveryStatus(r.URL.Query().Get("s"))}, nil
}

var (
	_ otp.Caller        = (*rcGateway)(nil)
	_ otp.ReceiptParser = (*rcGateway)(nil)
)

var errBadSignature = &otp.GatewayError{Gateway: "rcfake", Kind: otp.Rejected, Reason: "signature"}

func (g *rcGateway) last(calls bool) otp.Message {
	g.mu.Lock()
	defer g.mu.Unlock()
	list := g.sms
	if calls {
		list = g.calls
	}
	if len(list) == 0 {
		return otp.Message{}
	}
	return list[len(list)-1]
}

var rcDigits = regexp.MustCompile(`\d{6}`)

// rcNew is a flow environment whose service sends through an rcGateway.
func rcNew(t *testing.T, receiptsURL string) (*htEnv, *rcGateway) {
	t.Helper()
	e := htNew(t, nil, func(h *Handler) { h.ReceiptsURL = receiptsURL })
	gw := &rcGateway{}
	e.h.useGateway(gw)
	svc, err := e.h.newService(e.h.service.Config(), e.store)
	if err != nil {
		t.Fatal(err)
	}
	e.h.service = svc
	return e, gw
}

func rcSend(t *testing.T, b *htBrowser, gw *rcGateway) string {
	t.Helper()
	w, body := b.postSend()
	if w.Code != http.StatusSeeOther {
		t.Fatalf("send: %d\n%s", w.Code, body)
	}
	return rcDigits.FindString(gw.last(false).Body)
}

func TestDeliveryReceipts(t *testing.T) {
	t.Parallel()
	e, gw := rcNew(t, "https://example.com")
	b := e.browser("rita")
	rcSend(t, b, gw)
	m := gw.last(false)
	if m.ReceiptBase != "https://example.com/_stepup/receipt" || m.ReceiptToken == "" {
		t.Fatalf("message asks for receipts at %q with token %q", m.ReceiptBase, m.ReceiptToken)
	}
	receiptPath := "/_stepup/receipt/rcfake/" + m.ReceiptToken
	provider := e.browser("")

	page := func() string {
		_, body := b.get("/_stepup/?r=%2Fsettings")
		return body
	}
	if strings.Contains(page(), `id="delivery"`) {
		t.Fatal("the code page shows a delivery status before any report")
	}

	t.Run("a signed report for our token is recorded and shown on the code page", func(t *testing.T) {
		w, _ := provider.get(receiptPath+"?s=delivered", "X-Fake-Signature: ok")
		if w.Code != http.StatusOK {
			t.Fatalf("report: %d", w.Code)
		}
		if body := page(); !strings.Contains(body, "The SMS was delivered to your phone.") {
			t.Fatalf("the code page does not say delivered:\n%s", body)
		}
	})
	t.Run("a later 'sent' report does not undo 'delivered'", func(t *testing.T) {
		provider.get(receiptPath+"?s=sent", "X-Fake-Signature: ok")
		if !strings.Contains(page(), "delivered to your phone") {
			t.Fatal("delivered was downgraded")
		}
	})
	for _, tc := range []struct {
		name, path, sig string
		want            int
	}{
		{"a report without the provider's signature is refused", receiptPath + "?s=failed", "bad", http.StatusForbidden},
		{"a report with a tampered token is refused", "/_stepup/receipt/rcfake/" + tamper(m.ReceiptToken) + "?s=failed", "ok", http.StatusNotFound},
		{"a report for a gateway that is not configured is refused", "/_stepup/receipt/twilio/" + m.ReceiptToken + "?s=failed", "ok", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := provider.request(http.MethodGet, tc.path, nil, "X-Fake-Signature: "+tc.sig)
			err := e.h.ServeHTTP(httptestRecorder(), r, nil)
			if status := httpStatus(err); status != tc.want {
				t.Fatalf("status %d (%v), want %d", status, err, tc.want)
			}
			if !strings.Contains(page(), "delivered to your phone") {
				t.Fatal("a refused report changed the status")
			}
		})
	}
}

func TestReceiptsNeedReceiptsURL(t *testing.T) {
	t.Parallel()
	e, gw := rcNew(t, "")
	b := e.browser("rob")
	rcSend(t, b, gw)
	if m := gw.last(false); m.ReceiptBase != "" || m.ReceiptToken != "" {
		t.Fatalf("receipts asked for without receipts_url: %+v", m)
	}
	r := b.request(http.MethodGet, "/_stepup/receipt/rcfake/anything?s=delivered", nil, "X-Fake-Signature: ok")
	if status := httpStatus(e.h.ServeHTTP(httptestRecorder(), r, nil)); status != http.StatusNotFound {
		t.Fatalf("status %d", status)
	}
}

func TestCallMeInstead(t *testing.T) {
	t.Parallel()
	e, gw := rcNew(t, "https://example.com")
	b := e.browser("vera")
	smsCode := rcSend(t, b, gw)
	provider := e.browser("")
	provider.get("/_stepup/receipt/rcfake/"+gw.last(false).ReceiptToken+"?s=failed", "X-Fake-Signature: ok")

	_, body := b.get("/_stepup/?r=%2Fsettings")
	if !strings.Contains(body, "Try a call instead") || !strings.Contains(body, `action="/_stepup/call"`) {
		t.Fatalf("a failed SMS should offer a call:\n%s", body)
	}
	call := func() (int, string) {
		e.clock.Add(10 * time.Minute / 4)
		w, body := b.do(http.MethodPost, "/_stepup/call", url.Values{"csrf": {b.csrf()}, "r": {"/settings"}})
		return w.Code, body
	}
	if status, body := call(); status != http.StatusSeeOther {
		t.Fatalf("call: %d\n%s", status, body)
	}
	spoken := gw.last(true)
	callCode := rcDigits.FindString(spoken.Body)
	if spoken.To != htNumber || callCode == "" || callCode == smsCode || strings.Count(spoken.Body, callCode) != 2 {
		t.Fatalf("the call %+v should read a new code twice", spoken)
	}
	if w, _ := b.verify(smsCode); w.Code == http.StatusSeeOther {
		t.Fatal("the SMS code still works after the call replaced it")
	}
	if status, _ := call(); status != http.StatusSeeOther {
		t.Fatalf("second call: %d", status)
	}
	status, body := call()
	if status != http.StatusTooManyRequests || !strings.Contains(body, "No more calls") {
		t.Fatalf("a third call: %d\n%s", status, body)
	}
	if n := len(gw.calls); n != 2 {
		t.Fatalf("%d calls made, want 2", n)
	}
	if w, _ := b.verify(rcDigits.FindString(gw.last(true).Body)); w.Code != http.StatusSeeOther {
		t.Fatalf("the last call's code does not verify: %d", w.Code)
	}
}

func TestSendFailuresTellTheUserWhatHappened(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a provider that refused the number says codes can't go to it",
			&otp.GatewayError{Gateway: "rcfake", Kind: otp.Rejected, Reason: "invalid_number", Code: "21211"}, "can't be sent to this phone number"},
		{"a provider that never answered says the code may still arrive",
			&otp.GatewayError{Gateway: "rcfake", Kind: otp.Unknown, Reason: "no_answer"}, "may still arrive"},
		{"a provider that could not be reached says try again",
			&otp.GatewayError{Gateway: "rcfake", Kind: otp.NotSent, Reason: "unreachable"}, "couldn't send the code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, gw := rcNew(t, "")
			gw.fail = tc.err
			w, body := e.browser("sam").postSend()
			body = html.UnescapeString(body)
			if w.Code != http.StatusBadGateway || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d, want 502 saying %q:\n%s", w.Code, tc.want, body)
			}
			if strings.Contains(body, "21211") || strings.Contains(body, "rcfake") {
				t.Fatal("the page shows provider details")
			}
		})
	}
}

func tamper(token string) string {
	b := []byte(token)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}

func httptestRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// httpStatus is the status a handler error carries (200 for none).
func httpStatus(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	if err != nil {
		return 500
	}
	return http.StatusOK
}

func ioNopCloser(r io.Reader) io.ReadCloser { return io.NopCloser(r) }

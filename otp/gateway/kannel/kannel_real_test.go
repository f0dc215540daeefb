package kannel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/kanneltest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/kannel"
)

// report is one delivery report Kannel made at the receipt endpoint.
type report struct {
	path, query string
	status      otp.DeliveryStatus
	err         error
}

// TestKannelRealDeliversAndReports sends through a real Kannel (bearerbox,
// smsbox, and fakesmsc standing in for the phone network) and reads the
// messages where fakesmsc received them and the reports where Kannel made
// them.
func TestKannelRealDeliversAndReports(t *testing.T) {
	t.Parallel()
	k := kanneltest.Start(t)
	g, err := kannel.New(kannel.Config{URL: k.SendSMSURL, Username: k.Username, Password: k.Password, From: "12345", DLR: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan report, 64)
	receipts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, err := g.ParseReceipt(r, "")
		reports <- report{r.URL.Path, r.URL.RawQuery, rep.Status, err}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receipts.Close()

	for i, tc := range []struct {
		name, body, coding, token string
	}{
		{"English arrives as 7-bit text", "Example code: 123456. It expires in 5 min.", "text", "tok-en"},
		{"Japanese arrives as UCS-2", "確認コード: 123456", "ucs-2", "tok-ja"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			receipt, err := g.Send(ctx, otp.Message{To: "+819012345678", Body: tc.body, ReceiptBase: receipts.URL + "/receipts", ReceiptToken: tc.token})
			if err != nil {
				t.Fatalf("%v\n%s", err, k.Output())
			}
			if receipt != (otp.Receipt{Gateway: "kannel", Status: otp.DeliveryQueued}) {
				t.Errorf("receipt %+v", receipt)
			}
			sms := k.WaitMessages(t, i+1, 10*time.Second)[i]
			if sms.Coding != tc.coding || sms.Text != tc.body || sms.To != "+819012345678" || sms.From != "12345" {
				t.Errorf("fakesmsc got from %q to %q %s %q (printed %q), want from 12345 to +819012345678 %s %q",
					sms.From, sms.To, sms.Coding, sms.Text, sms.Raw, tc.coding, tc.body)
			}

			// fakesmsc acknowledges each message (type 8) and reports it
			// delivered (type 1), in either order.
			want := map[otp.DeliveryStatus]bool{otp.DeliverySent: true, otp.DeliveryDelivered: true}
			deadline := time.After(10 * time.Second)
			for len(want) > 0 {
				select {
				case rep := <-reports:
					if rep.path != "/receipts/kannel/"+tc.token {
						// The other message's late report.
						if !strings.HasPrefix(rep.path, "/receipts/kannel/tok-") {
							t.Errorf("report at %s?%s", rep.path, rep.query)
						}
						continue
					}
					if rep.err != nil {
						t.Fatalf("report ?%s: %v", rep.query, rep.err)
					}
					t.Logf("report ?%s -> %s", rep.query, rep.status)
					delete(want, rep.status)
				case <-deadline:
					t.Fatalf("reports missing: %v\n%s", want, k.Output())
				}
			}
		})
	}
}

func TestKannelRealWrongPasswordIsNotSent(t *testing.T) {
	t.Parallel()
	k := kanneltest.Start(t)
	g, err := kannel.New(kannel.Config{URL: k.SendSMSURL, Username: k.Username, Password: "not-" + k.Password, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Send(context.Background(), otp.Message{To: "+819012345678", Body: "Example code: 123456"})
	if err == nil {
		t.Fatal("no error with a wrong password")
	}
	ge := gatewayError(t, err)
	if ge.Kind != otp.NotSent || ge.Reason != "auth" {
		t.Errorf("got %s %s (%v), want not_sent auth", ge.Kind, ge.Reason, err)
	}
	if strings.Contains(err.Error(), k.Password) || strings.Contains(err.Error(), "123456") {
		t.Errorf("error %q carries the password or the code", err)
	}
	if n := len(k.Messages()); n != 0 {
		t.Errorf("fakesmsc got %d messages", n)
	}
}

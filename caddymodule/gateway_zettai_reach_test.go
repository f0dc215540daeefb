package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/zettaireach"
)

const zrToken = "1234567890abcdefrghijklmnopqrstu"

func TestZettaiReachGatewayCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, input string
		want        string // the module's JSON
		err         string
	}{
		{name: "every option is read", input: `zettai_reach {
				token {env.ZETTAI_REACH_TOKEN}
				client_id 12345
				sms_code 67890
				base_url https://sms-api.aossms.com
				timeout 5s
				rate 200
				dlr
			}`,
			want: `{"token":"{env.ZETTAI_REACH_TOKEN}","client_id":"12345","sms_code":"67890",` +
				`"base_url":"https://sms-api.aossms.com","timeout":5000000000,"dlr":true,"rate":200}`},
		{name: "a rate over the provider's 600 a second is refused", input: "zettai_reach {\n rate 601\n}", err: `rate "601": expected a whole number from 1 to 600`},
		{name: "an argument is refused", input: `zettai_reach 12345`, err: `gateway zettai_reach takes no argument, got "12345"`},
		{name: "no block lacks the credentials", input: `zettai_reach`, err: "expected token, client_id and sms_code"},
		{name: "a missing sms code is refused", input: "zettai_reach {\n token t\n client_id 1\n}", err: "expected token, client_id and sms_code"},
		{name: "an unknown option is refused with the list", input: "zettai_reach {\n clientId 1\n}",
			err: `unknown zettai_reach gateway option "clientId": expected token, client_id, sms_code`},
		{name: "an option without its value is refused", input: "zettai_reach {\n token\n}", err: "token: expected one value"},
		{name: "a timeout that is not a duration is refused", input: "zettai_reach {\n timeout soon\n}", err: `timeout "soon": expected a duration`},
		{name: "dlr takes no value", input: "zettai_reach {\n dlr json\n}", err: `dlr takes no value, got "json"`},
		{name: "the error names the line", input: "zettai_reach {\n token t\n\n nope x\n}", err: "at Testfile:4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCaddyfileModule(t, new(ZettaiReachGateway), tc.input, tc.want, tc.err)
		})
	}
}

// zrFake is a fake 絶対リーチ!SMS that checks the documented send request and
// keeps each form it accepts.
type zrFake struct {
	t     *testing.T
	mu    sync.Mutex
	forms []url.Values
}

func (f *zrFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(raw))
	if r.Method != http.MethodPost || r.URL.Path != zettaireach.SendPath || form.Get("token") != zrToken || form.Get("clientId") != "12345" {
		f.t.Errorf("fake provider: %s %s with %d fields", r.Method, r.URL.Path, len(form))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.forms = append(f.forms, form)
	f.mu.Unlock()
	io.WriteString(w, `{"responseCode":0,"responseMessage":"Success.","phoneNumber":"+819012345678","smsMessage":"x"}`)
}

func (f *zrFake) last() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.forms) == 0 {
		return nil
	}
	return f.forms[len(f.forms)-1]
}

// TestZettaiReachDeliveryResultShowsOnTheCodePage sends a code through the
// provisioned module to a fake provider, then posts the provider's DLR push
// to the one registered address, and checks the code page says delivered.
func TestZettaiReachDeliveryResultShowsOnTheCodePage(t *testing.T) {
	t.Parallel()
	fake := &zrFake{t: t}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	g := &ZettaiReachGateway{Token: zrToken, ClientID: "12345", SMSCode: "67890", BaseURL: srv.URL, DLR: true}
	if err := g.Provision(twContext(t)); err != nil {
		t.Fatal(err)
	}
	e := htNew(t, nil, func(h *Handler) { h.ReceiptsURL = "https://example.com" })
	e.h.useGateway(g)
	svc, err := e.h.newService(e.h.service.Config(), e.store)
	if err != nil {
		t.Fatal(err)
	}
	e.h.service = svc
	b := e.browser("rita")
	if w, body := b.postSend(); w.Code != http.StatusSeeOther {
		t.Fatalf("send: %d\n%s", w.Code, body)
	}
	form := fake.last()
	if form == nil || form.Get("phoneNumber") != htNumber || form.Get("smsCode") != "67890" || form.Get("clientTag") == "" {
		t.Fatalf("the provider got %v", form)
	}
	page := func() string {
		_, body := b.get("/_stepup/?r=%2Fsettings")
		return body
	}
	push := func(tag, status string) int {
		event := map[string]any{"type": "DLR", "dateTime": "2023/01/01 12:30:00", "messageId": "abcdefghijklmnopqrstuv0123456789",
			"phoneNumber": htNumber, "smsCode": "67890", "messageText": "x", "clientId": "12345", "clientTag": tag,
			"statusId": status, "statusDescription": "x"}
		raw, _ := json.Marshal(map[string]any{"eventNotifications": []any{event}})
		r := e.browser("").request(http.MethodPost, "/_stepup/receipt/zettai_reach/push", url.Values{"json": {string(raw)}})
		return httpStatus(e.h.ServeHTTP(httptestRecorder(), r, nil))
	}
	t.Run("a result for a tag we did not make is refused and changes nothing", func(t *testing.T) {
		if status := push(tamper(form.Get("clientTag")), "3"); status != http.StatusNotFound {
			t.Fatalf("status %d, want 404", status)
		}
		if strings.Contains(page(), `id="delivery"`) {
			t.Fatal("a forged result shows on the code page")
		}
	})
	t.Run("the provider's delivered result shows on the code page", func(t *testing.T) {
		if status := push(form.Get("clientTag"), "2"); status != http.StatusOK {
			t.Fatalf("status %d, want 200", status)
		}
		if !strings.Contains(page(), "The SMS was delivered to your phone.") {
			t.Fatal("the code page does not say delivered")
		}
	})
}

// TestReadmeProviderFailoverExampleAdapts adapts the README's failover
// set-up (a domestic provider first, an international one second) in a
// site, so the README can't show a chain that fails to load.
func TestReadmeProviderFailoverExampleAdapts(t *testing.T) {
	t.Parallel()
	block := readmeCaddyfileBlock(t, func(b string) bool {
		return strings.HasPrefix(strings.TrimSpace(b), "gateway failover {") && strings.Contains(b, "zettai_reach")
	})
	if block == "" {
		t.Fatal("the README has no caddyfile block starting with `gateway failover {` that uses zettai_reach")
	}
	indented := regexp.MustCompile("(?m)^").ReplaceAllString(strings.TrimSuffix(block, "\n"), "\t\t")
	site := "example.com {\n\tsms_stepup /settings* {\n\t\tidentity {http.auth.user.id}\n\t\tenroll\n" + indented + "\n\t}\n}\n"
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), map[string]any{"filename": "README.md"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the README's failover block does not adapt: %v %v\n%s", err, warnings, site)
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	gw, _ := findKey(cfg, "gateway").(map[string]any)
	members, _ := gw["gateways"].([]any)
	names := []any{gw["type"]}
	for _, m := range members {
		names = append(names, m.(map[string]any)["type"])
	}
	if fmt.Sprint(names) != "[failover zettai_reach twilio]" {
		t.Fatalf("the adapted gateways are %v, want failover of zettai_reach then twilio\n%s", names, out)
	}
}

var _ otp.CapabilityReporter = (*ZettaiReachGateway)(nil)

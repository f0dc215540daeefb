package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

const knPassword = "kn-s3cret"

func TestKannelGatewayCaddyfile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, input string
		want        string // the module's JSON
		err         string
	}{
		{name: "every option is read", input: `kannel {
				url http://127.0.0.1:13013/cgi-bin/sendsms
				username stepup
				password {env.KANNEL_PASSWORD}
				from Example
				dlr
				timeout 10s
			}`,
			want: `{"url":"http://127.0.0.1:13013/cgi-bin/sendsms","username":"stepup","password":"{env.KANNEL_PASSWORD}",` +
				`"from":"Example","dlr":true,"timeout":10000000000}`},
		{name: "url, username and password are enough", input: "kannel {\n url http://k:13013/cgi-bin/sendsms\n username u\n password p\n}",
			want: `{"url":"http://k:13013/cgi-bin/sendsms","username":"u","password":"p"}`},
		{name: "an argument is refused", input: "kannel http://k:13013/cgi-bin/sendsms", err: `gateway kannel takes no argument, got "http://k:13013/cgi-bin/sendsms"`},
		{name: "no block lacks the account", input: "kannel", err: "expected url, username and password"},
		{name: "a missing password is refused", input: "kannel {\n url http://k/\n username u\n}", err: "expected url, username and password"},
		{name: "a missing url is refused", input: "kannel {\n username u\n password p\n}", err: "expected url, username and password"},
		{name: "an unknown option is refused with the list", input: "kannel {\n url http://k/\n user u\n}",
			err: `unknown kannel gateway option "user": expected url, username, password, from, dlr or timeout`},
		{name: "an option without its value is refused", input: "kannel {\n url\n}", err: "url: expected one value"},
		{name: "an option with two values is refused", input: "kannel {\n from Example Inc\n}", err: `from: expected one value, got another: "Inc"`},
		{name: "a timeout that is not a duration is refused", input: "kannel {\n timeout soon\n}", err: `timeout "soon": expected a duration`},
		{name: "a timeout over a minute is refused", input: "kannel {\n timeout 2m\n}", err: `timeout "2m": expected a duration`},
		{name: "dlr takes no value", input: "kannel {\n dlr on\n}", err: `dlr takes no value, got "on"`},
		{name: "the error names the line", input: "kannel {\n url http://k/\n\n nope x\n}", err: "Testfile:4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCaddyfileModule(t, new(KannelGateway), tc.input, tc.want, tc.err)
		})
	}
}

func TestKannelGatewayInTheSmsStepupBlock(t *testing.T) {
	t.Parallel()
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`sms_stepup {
		identity {http.auth.user.id}
		phone {http.request.header.X-Phone}
		gateway kannel {
			url http://127.0.0.1:13013/cgi-bin/sendsms
			username stepup
			password {env.KANNEL_PASSWORD}
			dlr
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(h.GatewayRaw, &got); err != nil {
		t.Fatalf("gateway JSON %s: %v", h.GatewayRaw, err)
	}
	if err := json.Unmarshal([]byte(`{"type":"kannel","url":"http://127.0.0.1:13013/cgi-bin/sendsms","username":"stepup",`+
		`"password":"{env.KANNEL_PASSWORD}","dlr":true}`), &want); err != nil {
		t.Fatal(err)
	}
	if !knJSONEqual(got, want) {
		t.Errorf("gateway JSON %s", h.GatewayRaw)
	}
}

func knJSONEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// knFake is a fake smsbox that hands each request's query to the test.
func knFake(t *testing.T) (*httptest.Server, <-chan url.Values) {
	t.Helper()
	got := make(chan url.Values, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "0: Accepted for delivery")
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func knContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func TestKannelGatewayProvisionExpandsPlaceholdersAndDelegates(t *testing.T) {
	srv, got := knFake(t)
	secret := filepath.Join(t.TempDir(), "kannel-password")
	if err := os.WriteFile(secret, []byte(knPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STEPUP_KN_URL", srv.URL+"/cgi-bin/sendsms")
	t.Setenv("STEPUP_KN_USER", "stepup")
	g := &KannelGateway{URL: "{env.STEPUP_KN_URL}", Username: "{env.STEPUP_KN_USER}", Password: "{file." + secret + "}",
		From: "Example", DLR: true, Timeout: caddy.Duration(5 * time.Second)}
	if err := g.Provision(knContext(t)); err != nil {
		t.Fatal(err)
	}
	m := otp.Message{To: "+819012345678", Body: "確認コード: 739214", ReceiptBase: "https://example.com/.sms-stepup/receipts", ReceiptToken: "tok"}
	r, err := g.Send(t.Context(), m)
	if err != nil || r != (otp.Receipt{Gateway: "kannel", Status: otp.DeliveryQueued}) {
		t.Fatalf("send: %+v %v", r, err)
	}
	q := <-got
	if q.Get("username") != "stepup" || q.Get("password") != knPassword || q.Get("from") != "Example" {
		t.Errorf("sent as %q:%q from %q, want the expanded username and password", q.Get("username"), q.Get("password"), q.Get("from"))
	}
	if q.Get("coding") != "2" || q.Get("dlr-url") != m.ReceiptURL("kannel")+"?type=%d" {
		t.Errorf("coding %q dlr-url %q", q.Get("coding"), q.Get("dlr-url"))
	}

	req := httptest.NewRequest(http.MethodGet, "/.sms-stepup/receipts/kannel/tok?type=1", nil)
	p := g.Capabilities().Receipts["kannel"]
	if p == nil {
		t.Fatal("a Kannel gateway with dlr takes no delivery reports")
	}
	if rep, err := p.ParseReceipt(req, m.ReceiptURL("kannel")); err != nil || rep.Status != otp.DeliveryDelivered {
		t.Errorf("receipt type=1: %+v %v, want delivered", rep, err)
	}
}

func TestKannelGatewayProvisionRefusesAMissingSecret(t *testing.T) {
	t.Setenv("STEPUP_KN_EMPTY", "")
	for _, tc := range []struct {
		name string
		g    KannelGateway
		want string
	}{
		{"an unset password variable", KannelGateway{URL: "http://k/", Username: "u", Password: "{env.STEPUP_KN_EMPTY}"},
			"kannel gateway password: evaluated placeholder {env.STEPUP_KN_EMPTY} is empty"},
		{"an unset username variable", KannelGateway{URL: "http://k/", Username: "{env.STEPUP_KN_EMPTY}", Password: "p"},
			"kannel gateway username: evaluated placeholder"},
		{"an unknown placeholder", KannelGateway{URL: "http://k/", Username: "u", Password: "{kannel.password}"},
			"kannel gateway password: unrecognized placeholder {kannel.password}"},
		{"a missing password file", KannelGateway{URL: "http://k/", Username: "u", Password: "{file./nonexistent/kannel}"},
			"kannel gateway password"},
		{"no password at all", KannelGateway{URL: "http://k/", Username: "u"}, "password is required"},
		{"a URL that is not http", KannelGateway{URL: "smpp://k:2775", Username: "u", Password: "p"}, `url "smpp://k:2775"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.Provision(knContext(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.g.Gateway != nil {
				t.Error("a gateway was set up from a config with errors")
			}
		})
	}
}

func TestKannelGatewayBeforeProvisionOffersNoCapabilities(t *testing.T) {
	t.Parallel()
	g := KannelGateway{DLR: true}
	if c := g.Capabilities(); c.Receipts != nil || c.Health != nil || c.Voice != nil {
		t.Errorf("capabilities %+v before provision", c)
	}
}

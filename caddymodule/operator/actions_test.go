package operator

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestActionsMakeTheCommandsAndRoutes: each entry of the table is a
// subcommand whose usage, argument and flags come from the fields it takes,
// and an admin route with the method its audit implies.
func TestActionsMakeTheCommandsAndRoutes(t *testing.T) {
	cmd := &cobra.Command{Use: "sms-stepup"}
	Commands(cmd)
	wantUse := map[string]string{
		"unlock":       "unlock <identity>",
		"revoke":       "revoke <identity>",
		"reset-number": "reset-number <identity>",
		"reset-budget": "reset-budget",
		"unblock":      "unblock <prefix|country>",
		"status":       "status [<identity>] [--locked <n>]",
		"send-test":    "send-test --to <number> [--locale en|ja]",
		"history":      "history [<identity>] [--prefix <prefix>] [--since <duration>]",
	}
	wantMethod := map[string]string{"status": http.MethodGet, "history": http.MethodGet}
	for _, a := range actions {
		t.Run(a.name+" is a subcommand and a route", func(t *testing.T) {
			sub, _, err := cmd.Find([]string{a.name})
			if err != nil || sub.Name() != a.name {
				t.Fatalf("no subcommand %s: %v", a.name, err)
			}
			if sub.Use != wantUse[a.name] {
				t.Errorf("usage %q, want %q", sub.Use, wantUse[a.name])
			}
			for _, f := range a.accepts() {
				if flag := sub.Flags().Lookup(f.name); (flag != nil) != (!f.meta && !f.positional) {
					t.Errorf("field %s: flag %v", f.name, flag)
				}
			}
			if sub.Flags().Lookup("json") == nil {
				t.Error("no --json")
			}
			if want := cmp.Or(wantMethod[a.name], http.MethodPost); a.method() != want {
				t.Errorf("route method %s, want %s", a.method(), want)
			}
		})
	}
	if _, ok := actionNamed("keygen"); ok {
		t.Error("keygen, which acts on no handler, has an admin route")
	}
}

// TestRequestsAreCheckedAlikeOnBothWaysIn: the command line and the admin
// API refuse the same requests, each in its own words.
func TestRequestsAreCheckedAlikeOnBothWaysIn(t *testing.T) {
	n := func(i int) *int { return &i }
	for _, tc := range []struct {
		name, action string
		req          request
		api, cli     string // "": accepted
	}{
		{"an identity for unlock is accepted", "unlock", request{Identity: "alice"}, "", ""},
		{"unlock without an identity is refused", "unlock", request{}, `unlock needs identity, e.g. {"identity": "alice"}`, "expected one identity: caddy sms-stepup unlock <identity>"},
		{"a blank identity is no identity", "revoke", request{Identity: " \t"}, `revoke needs identity, e.g. {"identity": "alice"}`, "expected one identity: caddy sms-stepup revoke <identity>"},
		{"an identity with a line break is refused", "unlock", request{Identity: "alice\nINFO forged"}, "identity: expected printable UTF-8 text of at most 1024 bytes", "identity: expected printable UTF-8 text of at most 1024 bytes"},
		{"an identity of 2000 bytes is refused", "unlock", request{Identity: strings.Repeat("a", 2000)}, "identity: expected printable", "identity: expected printable"},
		{"an identity of invalid UTF-8 is refused", "reset-number", request{Identity: "al\xffice"}, "identity: expected printable", "identity: expected printable"},
		{"send-test without a number is refused", "send-test", request{Locale: "en"}, `send-test needs to, e.g. {"to": "090-1234-5678"}`, "--to <number> is required: the phone number to send the test message to"},
		{"a number with a control character is refused without showing it", "send-test", request{To: "0901234\x005678"}, "to: expected printable", "--to: expected printable"},
		{"an unknown locale is refused", "send-test", request{To: "09012345678", Locale: "fr"}, `locale "fr": expected en or ja`, `--locale "fr": expected en or ja`},
		{"a locked list past 1000 is refused", "status", request{Locked: n(1001)}, "locked 1001: expected 0 to 1000", "--locked 1001: expected 0 to 1000"},
		{"a negative locked list is refused", "status", request{Locked: n(-1)}, "locked -1: expected 0 to 1000", "--locked -1: expected 0 to 1000"},
		{"a field the action does not take is refused", "unlock", request{Identity: "alice", To: "09012345678"}, "unlock takes no to", "unlock takes no --to"},
		{"reset-budget takes no identity", "reset-budget", request{Identity: "alice"}, "reset-budget takes no identity", "reset-budget takes no identity"},
		{"a handler name with a control character is refused", "status", request{Handler: "/_stepup\r\n"}, "handler: expected printable", "handler: expected printable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := actionNamed(tc.action)
			if !ok {
				t.Fatalf("no action %s", tc.action)
			}
			for _, way := range []struct {
				name, want string
				words      words
			}{{"admin API", tc.api, apiWords}, {"command line", tc.cli, cliWords}} {
				got := a.problem(tc.req, way.words)
				if (got == "") != (way.want == "") || !strings.HasPrefix(got, way.want) {
					t.Errorf("%s: %q, want %q", way.name, got, way.want)
				}
				if len(tc.req.To) > 6 && strings.Contains(got, tc.req.To[:7]) {
					t.Errorf("%s: the message %q shows the number", way.name, got)
				}
			}
		})
	}
}

// TestAdminRoutesReadTheirRequests: what the admin API refuses before it
// looks for a handler, with the routes and fields named from the table.
func TestAdminRoutesReadTheirRequests(t *testing.T) {
	const js = "application/json"
	for _, tc := range []struct {
		name, method, target, ctype, body string
		status                            int
		allow, want                       string
	}{
		{"an unknown route names the routes there are", "POST", "/sms-stepup/nope", js, `{}`, 404, "",
			"/sms-stepup/nope: no such sms_stepup admin route; expected POST /sms-stepup/unlock, revoke, reset-number, reset-budget, unblock, send-test or GET /sms-stepup/status"},
		{"a GET to a change is refused", "GET", "/sms-stepup/revoke", "", "", 405, "POST", "revoke changes state, so it takes POST only"},
		{"a POST to status is refused", "POST", "/sms-stepup/status", js, `{}`, 405, "GET", "status takes GET only"},
		{"an empty body gets an example of the action's own", "POST", "/sms-stepup/send-test", js, ``, 400, "",
			`empty body: expected a JSON object such as {"to": "090-1234-5678"}`},
		{"a misspelt field is named", "POST", "/sms-stepup/unlock", js, `{"identiy":"alice"}`, 400, "",
			`unknown field "identiy"; expected an object with handler, config, operator, identity`},
		{"a field the action does not take is refused", "POST", "/sms-stepup/reset-budget", js, `{"identity":"alice"}`, 400, "", "reset-budget takes no identity"},
		{"a query parameter status does not take is named", "GET", "/sms-stepup/status?to=090", "", "", 400, "",
			`unknown query parameter "to": expected handler, config, operator, identity or locked`},
		{"a locked count that is no number is refused", "GET", "/sms-stepup/status?locked=ten", "", "", 400, "", `locked="ten": expected a number`},
		{"a query parameter given twice is refused", "GET", "/sms-stepup/status?identity=a&identity=b", "", "", 400, "", "query parameter identity given 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			err := (&adminAPI{}).serve(w, r)
			var apiErr caddy.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatus != tc.status || !strings.Contains(apiErr.Message, tc.want) {
				t.Fatalf("got %v (%+v), want %d with %q", err, apiErr, tc.status, tc.want)
			}
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

// TestResultsKeepTheirJSON: the admin API answers, and --json prints, the
// results in the field names operators' scripts read.
func TestResultsKeepTheirJSON(t *testing.T) {
	for _, tc := range []struct {
		res  result
		want string
	}{
		{unlockResult{Identity: "alice"}, `{"identity":"alice"}`},
		{resetNumberResult{Identity: "alice", Phone: "+81 90-****-5678"}, `{"identity":"alice","phone":"+81 90-****-5678"}`},
		{resetBudgetResult{Max: 50, UsedBefore: 7}, `{"max":50,"used_before":7}`},
		{unblockResult{Target: "+4477009001", Lifted: []string{"prefix:+4477009001xxxx"}, StillBlocked: []blockStatus{}}, `{"target":"+4477009001","lifted":["prefix:+4477009001xxxx"],"still_blocked":[]}`},
		{sendTestResult{Phone: "+81 90-****-3333", Gateway: "console", Status: "accepted"}, `{"phone":"+81 90-****-3333","gateway":"console","status":"accepted"}`},
		{revokeResult{Identity: "alice", RevocationRefresh: "10s"}, `{"identity":"alice","not_before":"0001-01-01T00:00:00Z","revocation_refresh":"10s"}`},
		{historyResult{Prefix: "+447700900", Retention: "168h0m0s", Entries: []otp.HistoryEntry{{Event: "send", Outcome: "refused", Reason: "cooldown",
			Identity: "alice", Phone: "+44 7700 ***123", Challenge: "abcd1234"}}},
			`{"prefix":"+447700900","since":"0001-01-01T00:00:00Z","retention":"168h0m0s","entries":[{"at":"0001-01-01T00:00:00Z","event":"send",` +
				`"outcome":"refused","reason":"cooldown","identity":"alice","phone":"+44 7700 ***123","challenge":"abcd1234"}]}`},
	} {
		if got, err := json.Marshal(tc.res); err != nil || string(got) != tc.want {
			t.Errorf("%T: %s, %v; want %s", tc.res, got, err, tc.want)
		}
	}
}

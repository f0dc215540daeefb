package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	// The directives the golden Caddyfiles use besides sms_stepup
	// (basic_auth, forward_auth, reverse_proxy, ...).
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var cfUpdate = flag.Bool("update", false, "rewrite the adapt golden files in testdata/adapt from the current output")

// cfWith is an sms_stepup block with the two required options on lines 2
// and 3, then lines from line 4 on.
func cfWith(lines ...string) string {
	var b strings.Builder
	b.WriteString("sms_stepup {\n\tidentity {http.auth.user.id}\n\tphone {http.request.header.X-Phone}\n")
	for _, l := range lines {
		b.WriteString("\t" + l + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// cfBase is the handler cfWith parses to before its extra lines.
func cfBase() Handler {
	return Handler{IdentityOptions: IdentityOptions{Identity: "{http.auth.user.id}", Phone: "{http.request.header.X-Phone}"}}
}

// cfParse parses and validates as the adapter does (without sites).
func cfParse(input string) (*Handler, error) {
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	if err == nil {
		err = h.validateCaddyfile()
	}
	h.caddyfileAt = nil // where each option was written; not a setting
	return h, err
}

// cfSameHandler compares every field, the JSON ones by meaning rather than
// by bytes.
func cfSameHandler(t *testing.T, got, want Handler) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"protect", got.ProtectRaw, want.ProtectRaw},
		{"store", got.StoreRaw, want.StoreRaw},
		{"gateway", got.GatewayRaw, want.GatewayRaw},
	} {
		g, err := json.Marshal(f.got)
		if err != nil {
			t.Fatalf("marshal %s: %v", f.name, err)
		}
		w, err := json.Marshal(f.want)
		if err != nil {
			t.Fatalf("marshal %s: %v", f.name, err)
		}
		if !cfJSONEqual(t, g, w) {
			t.Errorf("%s = %s, want %s", f.name, g, w)
		}
	}
	got.ProtectRaw, got.StoreRaw, got.GatewayRaw = nil, nil, nil
	want.ProtectRaw, want.StoreRaw, want.GatewayRaw = nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("handler =\n%+v\nwant\n%+v", got, want)
	}
}

func cfJSONEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestUnmarshalCaddyfileSetsEachOption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		want  func(h *Handler)
	}{
		{
			name:  "identity and phone are placeholders kept unexpanded",
			input: cfWith(),
			want:  func(*Handler) {},
		},
		{
			name:  "a later identity replaces the earlier one",
			input: cfWith("identity {http.request.header.Remote-User}"),
			want:  func(h *Handler) { h.Identity = "{http.request.header.Remote-User}" },
		},
		{
			name:  "session names the application's session",
			input: cfWith("session {http.request.cookie.app_session}"),
			want:  func(h *Handler) { h.Session = "{http.request.cookie.app_session}" },
		},
		{
			name:  "headers_set_by forward_auth says forward_auth sets the headers identity and phone read",
			input: cfWith("headers_set_by forward_auth"),
			want:  func(h *Handler) { h.HeadersSetBy = "forward_auth" },
		},
		{
			name:  "headers_set_by trusted_proxy says a proxy in trusted_proxies sets them",
			input: cfWith("headers_set_by trusted_proxy"),
			want:  func(h *Handler) { h.HeadersSetBy = "trusted_proxy" },
		},
		{
			name:  "session_cookie names the session cookie, whole or split",
			input: cfWith("session_cookie _oauth2_proxy"),
			want:  func(h *Handler) { h.SessionCookie = "_oauth2_proxy" },
		},
		{
			name:  "phone_file alone is a phone source",
			input: "sms_stepup {\n\tidentity {http.auth.user.id}\n\tphone_file /etc/caddy/phones.csv\n}\n",
			want:  func(h *Handler) { h.Phone, h.PhoneFile = "", "/etc/caddy/phones.csv" },
		},
		{
			name:  "phone and phone_file together",
			input: cfWith("phone_file phones.csv"),
			want:  func(h *Handler) { h.PhoneFile = "phones.csv" },
		},
		{
			name:  "path_prefix moves the plugin's pages",
			input: cfWith("path_prefix /_verify"),
			want:  func(h *Handler) { h.PathPrefix = "/_verify" },
		},
		{
			name:  "realm names the handlers that share step-ups",
			input: cfWith("realm corp-apps.v2"),
			want:  func(h *Handler) { h.Realm = "corp-apps.v2" },
		},
		{
			name:  "login_url",
			input: cfWith("login_url https://sso.example.com/login"),
			want:  func(h *Handler) { h.LoginURL = "https://sso.example.com/login" },
		},
		{
			name:  "code_length 6 is the shortest allowed",
			input: cfWith("code_length 6"),
			want:  func(h *Handler) { h.CodeLength = 6 },
		},
		{
			name:  "code_length 10 is the longest allowed",
			input: cfWith("code_length 10"),
			want:  func(h *Handler) { h.CodeLength = 10 },
		},
		{
			name:  "code_ttl",
			input: cfWith("code_ttl 2m30s"),
			want:  func(h *Handler) { h.CodeTTL = caddy.Duration(150 * time.Second) },
		},
		{
			name:  "code_ttl 10m is the longest allowed",
			input: cfWith("code_ttl 10m"),
			want:  func(h *Handler) { h.CodeTTL = caddy.Duration(10 * time.Minute) },
		},
		{
			name:  "max_attempts 1 is the fewest allowed",
			input: cfWith("max_attempts 1"),
			want:  func(h *Handler) { h.MaxAttempts = 1 },
		},
		{
			name:  "max_attempts 10 is the most allowed",
			input: cfWith("max_attempts 10"),
			want:  func(h *Handler) { h.MaxAttempts = 10 },
		},
		{
			name:  "token_ttl",
			input: cfWith("token_ttl 30m"),
			want:  func(h *Handler) { h.TokenTTL = caddy.Duration(30 * time.Minute) },
		},
		{
			name:  "max_age",
			input: cfWith("max_age 5m"),
			want:  func(h *Handler) { h.MaxAge = caddy.Duration(5 * time.Minute) },
		},
		{
			name:  "revocation_refresh",
			input: cfWith("revocation_refresh 1s"),
			want:  func(h *Handler) { h.RevocationRefresh = caddy.Duration(time.Second) },
		},
		{
			name:  "revocation_refresh 5m is the most allowed",
			input: cfWith("revocation_refresh 5m"),
			want:  func(h *Handler) { h.RevocationRefresh = caddy.Duration(5 * time.Minute) },
		},
		{
			name:  "revocation_refresh 0 keeps the default",
			input: cfWith("revocation_refresh 0"),
			want:  func(*Handler) {},
		},
		{
			name:  "phone_file_refresh",
			input: cfWith("phone_file phones.csv", "phone_file_refresh 1m"),
			want:  func(h *Handler) { h.PhoneFile, h.PhoneFileRefresh = "phones.csv", caddy.Duration(time.Minute) },
		},
		{
			name:  "upstream_headers lists the headers to set",
			input: cfWith("upstream_headers identity verified_at auth_time token"),
			want:  func(h *Handler) { h.UpstreamHeaders = []string{"identity", "verified_at", "auth_time", "token"} },
		},
		{
			name:  "upstream_headers none sets none",
			input: cfWith("upstream_headers none"),
			want:  func(h *Handler) { h.UpstreamHeaders = []string{"none"} },
		},
		{
			name:  "signing_key is kept as written, placeholder included",
			input: cfWith("signing_key {env.STEPUP_SIGNING_KEY}"),
			want:  func(h *Handler) { h.SigningKey = "{env.STEPUP_SIGNING_KEY}" },
		},
		{
			name:  "default_region",
			input: cfWith("default_region US"),
			want:  func(h *Handler) { h.DefaultRegion = "US" },
		},
		{
			name:  "allow_countries takes several countries",
			input: cfWith("allow_countries JP US GB"),
			want:  func(h *Handler) { h.AllowCountries = []string{"JP", "US", "GB"} },
		},
		{
			name:  "service_name quoted",
			input: cfWith(`service_name "Example Corp"`),
			want:  func(h *Handler) { h.ServiceName = "Example Corp" },
		},
		{
			name:  "service_name unquoted words are joined by spaces",
			input: cfWith("service_name Example Corp"),
			want:  func(h *Handler) { h.ServiceName = "Example Corp" },
		},
		{
			name:  "store memory",
			input: cfWith("store memory"),
			want:  func(h *Handler) { h.StoreRaw = json.RawMessage(`{"type":"memory"}`) },
		},
		{
			name:  "fraud_guard off",
			input: cfWith("fraud_guard off"),
			want:  func(h *Handler) { h.FraudGuard = &FraudGuardConfig{Off: true} },
		},
		{
			name:  "a fraud_guard block",
			input: cfWith("fraud_guard {\n\t\twindow 2h\n\t\tmin_sends 20\n\t\tmin_conversion 0.3\n\t\tblock 30m\n\t\tmax_block 12h\n\t}"),
			want: func(h *Handler) {
				h.FraudGuard = &FraudGuardConfig{Window: caddy.Duration(2 * time.Hour), MinSends: 20, MinConversion: 0.3,
					Block: caddy.Duration(30 * time.Minute), MaxBlock: caddy.Duration(12 * time.Hour)}
			},
		},
		{
			name:  "store memory with a name",
			input: cfWith("store memory sessions"),
			want:  func(h *Handler) { h.StoreRaw = json.RawMessage(`{"type":"memory","name":"sessions"}`) },
		},
		{
			name:  "gateway console",
			input: cfWith("gateway console"),
			want:  func(h *Handler) { h.GatewayRaw = json.RawMessage(`{"type":"console"}`) },
		},
		{
			name:  "gateway console with an outbox",
			input: cfWith("gateway console {", "\toutbox /var/log/caddy/sms.jsonl", "}"),
			want: func(h *Handler) {
				h.GatewayRaw = json.RawMessage(`{"type":"console","outbox":"/var/log/caddy/sms.jsonl"}`)
			},
		},
		{
			name:  "options after a module block are still read",
			input: cfWith("gateway console {", "\toutbox o.jsonl", "}", "code_length 8"),
			want: func(h *Handler) {
				h.GatewayRaw = json.RawMessage(`{"type":"console","outbox":"o.jsonl"}`)
				h.CodeLength = 8
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cfParse(tt.input)
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile(%q): %v", tt.input, err)
			}
			want := cfBase()
			tt.want(&want)
			cfSameHandler(t, *got, want)
		})
	}
}

func TestUnmarshalCaddyfileDirectiveArguments(t *testing.T) {
	t.Parallel()
	const body = " {\n\tidentity {http.auth.user.id}\n\tphone {http.request.header.X-Phone}\n}\n"
	tests := []struct {
		name    string
		args    string
		protect caddyhttp.RawMatcherSets
		named   string
	}{
		{
			name: "no argument protects everything",
		},
		{
			name: "a wildcard protects everything",
			args: " *",
		},
		{
			name:    "paths become one path matcher with all of them",
			args:    " /a* /b*",
			protect: caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/a*","/b*"]`)}},
		},
		{
			name:  "a named matcher is kept by name for parseCaddyfile",
			args:  " @sensitive",
			named: "@sensitive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cfParse("sms_stepup" + tt.args + body)
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			want := cfBase()
			want.ProtectRaw = tt.protect
			want.namedMatcher = tt.named
			if tt.named != "" && got.namedMatcherToken.Text != tt.named {
				t.Errorf("the matcher's token %q, want %q", got.namedMatcherToken.Text, tt.named)
			}
			got.namedMatcherToken = caddyfile.Token{}
			cfSameHandler(t, *got, want)
		})
	}
}

func TestUnmarshalCaddyfileRefusesWithLineAndExpectation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		at    string   // the position the error ends with
		words []string // what the message must say
	}{
		{
			name:  "code_length 5 is below the minimum",
			input: cfWith("code_length 5"),
			at:    "Testfile:4",
			words: []string{"code_length 5:", "expected a whole number from 6 to 10"},
		},
		{
			name:  "code_length 11 is above the maximum",
			input: cfWith("code_length 11"),
			at:    "Testfile:4",
			words: []string{"code_length 11:", "expected a whole number from 6 to 10"},
		},
		{
			name:  "code_length must be a number",
			input: cfWith("code_length abc"),
			at:    "Testfile:4",
			words: []string{`code_length "abc"`, "expected a whole number from 6 to 10"},
		},
		{
			name:  "code_ttl 11m is longer than 10 minutes",
			input: cfWith("code_ttl 11m"),
			at:    "Testfile:4",
			words: []string{"code_ttl 11m:", "expected a duration such as 5m", "at most 10m"},
		},
		{
			name:  "code_ttl 0s is not a lifetime",
			input: cfWith("code_ttl 0s"),
			at:    "Testfile:4",
			words: []string{"code_ttl 0s:", "more than 0"},
		},
		{
			name:  "code_ttl must be a duration",
			input: cfWith("code_ttl soon"),
			at:    "Testfile:4",
			words: []string{`code_ttl "soon"`, "expected a duration such as 5m"},
		},
		{
			name:  "max_attempts 0 allows no attempt",
			input: cfWith("max_attempts 0"),
			at:    "Testfile:4",
			words: []string{"max_attempts 0:", "expected a whole number from 1 to 10"},
		},
		{
			name:  "max_attempts 11 is above the maximum",
			input: cfWith("max_attempts 11"),
			at:    "Testfile:4",
			words: []string{"max_attempts 11:", "expected a whole number from 1 to 10"},
		},
		{
			name:  "token_ttl longer than a day",
			input: cfWith("token_ttl 25h"),
			at:    "Testfile:4",
			words: []string{"token_ttl 25h:", "at most 24h"},
		},
		{
			name:  "max_age negative",
			input: cfWith("max_age -5m"),
			at:    "Testfile:4",
			words: []string{"max_age -5m:", "more than 0"},
		},
		{
			name:  "revocation_refresh above five minutes",
			input: cfWith("revocation_refresh 6m"),
			at:    "Testfile:4",
			words: []string{"revocation_refresh 6m:", "from 0 (the default, 10s) to 5m"},
		},
		{
			name:  "revocation_refresh negative",
			input: cfWith("revocation_refresh -1s"),
			at:    "Testfile:4",
			words: []string{"revocation_refresh -1s:", "expected a duration"},
		},
		{
			name:  "revocation_refresh without a value",
			input: cfWith("revocation_refresh"),
			at:    "Testfile:4",
			words: []string{"revocation_refresh: expected one value"},
		},
		{
			name:  "phone_file_refresh 0, which would silently mean the default",
			input: cfWith("phone_file phones.csv", "phone_file_refresh 0"),
			at:    "Testfile:5",
			words: []string{"phone_file_refresh 0s:", "more than 0 and at most 1h"},
		},
		{
			name:  "phone_file_refresh above an hour",
			input: cfWith("phone_file phones.csv", "phone_file_refresh 2h"),
			at:    "Testfile:5",
			words: []string{"phone_file_refresh 2h:", "more than 0 and at most 1h"},
		},
		{
			name:  "phone_file_refresh without phone_file",
			input: cfWith("phone_file_refresh 30s"),
			at:    "Testfile:4",
			words: []string{"phone_file_refresh: expected phone_file too"},
		},
		{
			name:  "upstream_headers with an unknown header",
			input: cfWith("upstream_headers identity phone"),
			at:    "Testfile:4",
			words: []string{`upstream_headers "phone"`, "expected identity, verified_at, auth_time and token"},
		},
		{
			name:  "upstream_headers none with another",
			input: cfWith("upstream_headers none identity"),
			at:    "Testfile:4",
			words: []string{`upstream_headers "none"`, "or none alone"},
		},
		{
			name:  "upstream_headers without a value",
			input: cfWith("upstream_headers"),
			at:    "Testfile:4",
			words: []string{"upstream_headers: expected identity"},
		},
		{
			name:  "an unknown option is named and the known ones listed",
			input: cfWith("code_ttl 5m", "colour blue"),
			at:    "Testfile:5",
			words: []string{
				`unknown sms_stepup option "colour"`,
				"expected one of identity, headers_set_by, session, session_cookie, phone, phone_file, phone_file_refresh, phone_source, phone_source_cache, lookup, enroll, max_identities_per_number, path_prefix, realm, login_url, code_length, " +
					"code_ttl, max_attempts, resend_cooldown, failure_budget, token_ttl, max_age, route, revocation_refresh, upstream_headers, signing_key, previous_keys, signing_key_file, previous_key_files, default_region, allow_countries, allow_types, mobile_prefixes, deny_numbers, allow_numbers, limits, daily_budget, " +
					"service_name, message, max_segments, webotp_host, receipts_url, max_calls, fraud_guard, brand, templates, captcha, captcha_when, store, gateway",
			},
		},
		{
			name:  "identity is required",
			input: "sms_stepup {\n\tphone {http.request.header.X-Phone}\n}\n",
			at:    "Testfile:1",
			words: []string{"identity is required", "identity {http.auth.user.id}"},
		},
		{
			name:  "an identity of blanks is no identity",
			input: "sms_stepup {\n\tidentity \" \"\n\tphone {http.request.header.X-Phone}\n}\n",
			at:    "Testfile:2",
			words: []string{"identity is required"},
		},
		{
			name:  "a phone source is required",
			input: "sms_stepup {\n\tidentity {http.auth.user.id}\n}\n",
			at:    "Testfile:1",
			words: []string{"no phone source", "expected phone <placeholder>, phone_file <path>, phone_source <sql|ldap|http> or enroll"},
		},
		{
			name:  "an option without its value",
			input: cfWith("login_url"),
			at:    "Testfile:4",
			words: []string{"login_url: expected one value"},
		},
		{
			name:  "an option with an extra argument",
			input: cfWith("session {http.request.cookie.a} {http.request.cookie.b}"),
			at:    "Testfile:4",
			words: []string{"session: expected one value, got another", `"{http.request.cookie.b}"`},
		},
		{
			name:  "identity with an extra argument",
			input: "sms_stepup {\n\tidentity a b\n\tphone {x}\n}\n",
			at:    "Testfile:2",
			words: []string{"identity: expected one value, got another", `"b"`},
		},
		{
			name:  "code_length with an extra argument",
			input: cfWith("code_length 6 8"),
			at:    "Testfile:4",
			words: []string{"code_length: expected one value, got another", `"8"`},
		},
		{
			name:  "service_name without a name",
			input: cfWith("service_name"),
			at:    "Testfile:4",
			words: []string{"wrong argument count", "service_name"},
		},
		{
			name:  "allow_countries without countries",
			input: cfWith("allow_countries"),
			at:    "Testfile:4",
			words: []string{"allow_countries: expected one or more country codes"},
		},
		{
			name:  `path_prefix "/" would shadow the whole site`,
			input: cfWith("path_prefix /"),
			at:    "Testfile:4",
			words: []string{`path_prefix "/"`, "expected a plain path such as /_stepup"},
		},
		{
			name:  "path_prefix must start with a slash",
			input: cfWith("path_prefix x"),
			at:    "Testfile:4",
			words: []string{`path_prefix "x"`, "expected a plain path such as /_stepup"},
		},
		{
			name:  "path_prefix is not a pattern",
			input: cfWith("path_prefix /_stepup*"),
			at:    "Testfile:4",
			words: []string{`path_prefix "/_stepup*"`, "expected a plain path"},
		},
		{
			name:  "realm without a name",
			input: cfWith("realm"),
			at:    "Testfile:4",
			words: []string{"realm: expected one value"},
		},
		{
			name:  "realm with two names",
			input: cfWith("realm corp shop"),
			at:    "Testfile:4",
			words: []string{"realm: expected one value", `"shop"`},
		},
		{
			name:  "a realm name with a colon or a slash",
			input: cfWith("realm corp:shop/x"),
			at:    "Testfile:4",
			words: []string{`realm "corp:shop/x"`, "expected a name of up to 64 letters, digits, '.', '_' and '-'"},
		},
		{
			name:  "store without a module name",
			input: cfWith("store"),
			at:    "Testfile:4",
			words: []string{"store: expected a module name such as memory"},
		},
		{
			name:  "an unknown store module",
			input: cfWith("store nosuch"),
			at:    "Testfile:4",
			words: []string{`store "nosuch": no such module`, "expected e.g. memory"},
		},
		{
			name:  "an unknown gateway module",
			input: cfWith("gateway nosuch"),
			at:    "Testfile:4",
			words: []string{`gateway "nosuch": no such module`, "expected e.g. console"},
		},
		{
			name:  "store memory takes no block",
			input: cfWith("store memory { x }"),
			at:    "Testfile:4",
			words: []string{`store memory takes no block, got "x"`},
		},
		{
			name:  "store memory takes at most a name",
			input: cfWith("store memory a b"),
			at:    "Testfile:4",
			words: []string{"wrong argument count"},
		},
		{
			name:  "gateway console takes no argument",
			input: cfWith("gateway console loud"),
			at:    "Testfile:4",
			words: []string{"wrong argument count"},
		},
		{
			name:  "gateway console refuses an unknown sub-option",
			input: cfWith("gateway console {", "\tretries 3", "}"),
			at:    "Testfile:5",
			words: []string{`unknown console gateway option "retries"`, "expected outbox"},
		},
		{
			name:  "gateway console outbox needs a file",
			input: cfWith("gateway console {", "\toutbox", "}"),
			at:    "Testfile:5",
			words: []string{"wrong argument count", "outbox"},
		},
		{
			name:  "a path after a named matcher",
			input: "sms_stepup @sensitive /a* {\n\tidentity {x}\n\tphone {y}\n}\n",
			at:    "Testfile:1",
			words: []string{"use path patterns or one named matcher, not both"},
		},
		{
			name:  "a named matcher after a path",
			input: "sms_stepup /a* @sensitive {\n\tidentity {x}\n\tphone {y}\n}\n",
			at:    "Testfile:1",
			words: []string{"use path patterns or one named matcher, not both"},
		},
		{
			name:  "two named matchers",
			input: "sms_stepup @a @b {\n\tidentity {x}\n\tphone {y}\n}\n",
			at:    "Testfile:1",
			words: []string{"use path patterns or one named matcher, not both"},
		},
		{
			name:  "headers_set_by with a source the handler cannot check",
			input: cfWith("headers_set_by anyone"),
			at:    "Testfile:4",
			words: []string{`headers_set_by "anyone"`, "expected forward_auth", "or trusted_proxy"},
		},
		{
			name:  "headers_set_by without a value",
			input: cfWith("headers_set_by"),
			at:    "Testfile:4",
			words: []string{"headers_set_by: expected one value"},
		},
		{
			name:  "session_cookie with a separator in the name",
			input: cfWith("session_cookie a;b"),
			at:    "Testfile:4",
			words: []string{`session_cookie "a;b"`, "expected a cookie name"},
		},
		{
			name:  "session_cookie that is a placeholder",
			input: cfWith("session_cookie {http.request.cookie.s}"),
			at:    "Testfile:4",
			words: []string{"expected a cookie name such as _oauth2_proxy"},
		},
		{
			name:  "session and session_cookie together",
			input: cfWith("session {http.request.cookie.s}", "session_cookie s"),
			at:    "Testfile:5",
			words: []string{"session and session_cookie: expected one of them"},
		},
		{
			name:  "an argument that is neither path nor matcher",
			input: "sms_stepup admin {\n\tidentity {x}\n\tphone {y}\n}\n",
			at:    "Testfile:1",
			words: []string{`unexpected argument "admin"`, "expected path patterns starting with /, one named matcher (@name), or none"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cfParse(tt.input)
			if err == nil {
				t.Fatalf("UnmarshalCaddyfile(%q) accepted it, want an error", tt.input)
			}
			msg := err.Error()
			if !strings.HasSuffix(msg, ", at "+tt.at) {
				t.Errorf("error %q does not end with the position %q", msg, tt.at)
			}
			for _, w := range tt.words {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
}

// TestUnmarshalCaddyfileKnowsEveryListedOption keeps the list shown in "unknown option"
// errors in step with what the parser accepts.
func TestUnmarshalCaddyfileKnowsEveryListedOption(t *testing.T) {
	t.Parallel()
	for _, opt := range blockOptions {
		_, err := cfParse(cfWith(opt))
		if err != nil && strings.Contains(err.Error(), "unknown sms_stepup option") {
			t.Errorf("blockOptions lists %q but the parser does not know it: %v", opt, err)
		}
	}
}

// cfAdapt runs the Caddyfile adapter the way `caddy adapt` does.
func cfAdapt(body []byte) ([]byte, []caddyconfig.Warning, error) {
	return caddyconfig.GetAdapter("caddyfile").Adapt(body, nil)
}

func cfIndent(t *testing.T, compact []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "", "\t"); err != nil {
		t.Fatalf("indent: %v", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func TestAdaptGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "adapt", "*.caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 5 {
		t.Fatalf("found %d golden Caddyfiles in testdata/adapt, want at least 5", len(inputs))
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := cfAdapt(body)
			if err != nil {
				t.Fatalf("adapt %s: %v", in, err)
			}
			if len(warnings) > 0 {
				t.Errorf("adapt %s: warnings %+v, want none", in, warnings)
			}
			got := cfIndent(t, out)
			golden := strings.TrimSuffix(in, ".caddyfile") + ".json"
			if *cfUpdate {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("adapt %s differs from %s (run with -update to accept):\n%s", in, golden, got)
			}
		})
	}
}

func TestAdaptErrorGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "adapt", "invalid", "*.caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no Caddyfiles in testdata/adapt/invalid")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = cfAdapt(body)
			if err == nil {
				t.Fatalf("adapt %s succeeded, want an error", in)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(in, ".caddyfile") + ".err"
			if *cfUpdate {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("adapt %s: error\n%s\nwant\n%s", in, got, want)
			}
		})
	}
}

func TestAdaptCodeLength4NamesTheLine(t *testing.T) {
	body := []byte("example.com {\n\tsms_stepup {\n\t\tidentity {http.auth.user.id}\n\t\tphone {http.request.header.X-Phone}\n\t\tcode_length 4\n\t}\n}\n")
	_, _, err := cfAdapt(body)
	if err == nil {
		t.Fatal("adapt accepted code_length 4")
	}
	for _, w := range []string{"Caddyfile:5", "code_length 4:", "from 6 to 10"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// cfStep is one handler of an adapted config, in the order requests meet it.
type cfStep struct {
	Handler string
	Dial    string // first upstream, for reverse_proxy
	JSON    map[string]any
}

// cfSteps walks routes depth-first in order: route lists and handler lists
// are arrays, so the order is the config's.
func cfSteps(t *testing.T, adapted []byte) []cfStep {
	t.Helper()
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []any `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatalf("unmarshal adapted config: %v", err)
	}
	names := make([]string, 0, len(cfg.Apps.HTTP.Servers))
	for n := range cfg.Apps.HTTP.Servers {
		names = append(names, n)
	}
	sort.Strings(names)
	var steps []cfStep
	for _, n := range names {
		steps = cfWalkRoutes(steps, cfg.Apps.HTTP.Servers[n].Routes)
	}
	return steps
}

func cfWalkRoutes(steps []cfStep, routes []any) []cfStep {
	for _, r := range routes {
		route, _ := r.(map[string]any)
		handlers, _ := route["handle"].([]any)
		for _, hv := range handlers {
			h, _ := hv.(map[string]any)
			name, _ := h["handler"].(string)
			s := cfStep{Handler: name, JSON: h}
			if ups, ok := h["upstreams"].([]any); ok && len(ups) > 0 {
				up, _ := ups[0].(map[string]any)
				s.Dial, _ = up["dial"].(string)
			}
			steps = append(steps, s)
			if sub, ok := h["routes"].([]any); ok {
				steps = cfWalkRoutes(steps, sub)
			}
		}
	}
	return steps
}

func cfIndexOf(steps []cfStep, handler, dial string) int {
	return slices.IndexFunc(steps, func(s cfStep) bool {
		return s.Handler == handler && (dial == "" || s.Dial == dial)
	})
}

func cfAdaptFile(t *testing.T, path string) []byte {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, warnings, err := cfAdapt(body)
	if err != nil {
		t.Fatalf("adapt %s: %v", path, err)
	}
	if len(warnings) > 0 {
		t.Errorf("adapt %s: warnings %+v, want none", path, warnings)
	}
	return out
}

func TestAdaptOrdersSmsStepupWithoutOrderOption(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		before cfStep // the handler that sets the identity
		after  cfStep // the application
	}{
		{
			name:   "after basic_auth and before reverse_proxy, whatever the written order",
			file:   "order_basic_auth.caddyfile",
			before: cfStep{Handler: "authentication"},
			after:  cfStep{Handler: "reverse_proxy", Dial: "127.0.0.1:9080"},
		},
		{
			name:   "after forward_auth and before reverse_proxy, whatever the written order",
			file:   "order_forward_auth.caddyfile",
			before: cfStep{Handler: "reverse_proxy", Dial: "auth.internal:9091"},
			after:  cfStep{Handler: "reverse_proxy", Dial: "127.0.0.1:9080"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("testdata", "adapt", tt.file)
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "order ") {
					t.Fatalf("%s uses the order option; the test is that none is needed", path)
				}
			}
			steps := cfSteps(t, cfAdaptFile(t, path))
			auth := cfIndexOf(steps, tt.before.Handler, tt.before.Dial)
			stepup := cfIndexOf(steps, "sms_stepup", "")
			app := cfIndexOf(steps, tt.after.Handler, tt.after.Dial)
			if auth < 0 || stepup < 0 || app < 0 {
				t.Fatalf("handlers %+v: want %s, sms_stepup and %s", steps, tt.before.Handler, tt.after.Handler)
			}
			if auth >= stepup || stepup >= app {
				t.Errorf("order %s@%d, sms_stepup@%d, %s@%d: want %s, then sms_stepup, then %s",
					tt.before.Handler, auth, stepup, tt.after.Handler, app, tt.before.Handler, tt.after.Handler)
			}
		})
	}
}

func TestAdaptResolvesNamedMatcherIntoProtect(t *testing.T) {
	steps := cfSteps(t, cfAdaptFile(t, filepath.Join("testdata", "adapt", "named_matcher.caddyfile")))
	i := cfIndexOf(steps, "sms_stepup", "")
	if i < 0 {
		t.Fatalf("no sms_stepup handler in %+v", steps)
	}
	got, err := json.Marshal(steps[i].JSON["protect"])
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"path":["/admin*"]}]`; string(got) != want {
		t.Errorf("protect = %s, want %s", got, want)
	}
}

func TestAdaptUndefinedNamedMatcherIsAnError(t *testing.T) {
	body := []byte("example.com {\n\tsms_stepup @nowhere {\n\t\tidentity {http.auth.user.id}\n\t\tphone {http.request.header.X-Phone}\n\t}\n}\n")
	_, _, err := cfAdapt(body)
	if err == nil {
		t.Fatal("adapt accepted an undefined named matcher")
	}
	for _, w := range []string{"@nowhere", "Caddyfile:"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestAdaptCaddyfileExample(t *testing.T) {
	steps := cfSteps(t, cfAdaptFile(t, filepath.Join("..", "Caddyfile.example")))
	i := cfIndexOf(steps, "sms_stepup", "")
	if i < 0 {
		t.Fatalf("Caddyfile.example has no sms_stepup handler: %+v", steps)
	}
	h := steps[i].JSON
	if h["identity"] != "{http.auth.user.id}" {
		t.Errorf("identity = %v, want {http.auth.user.id}", h["identity"])
	}
	protect, err := json.Marshal(h["protect"])
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"path":["/settings*","/password*"]}]`; string(protect) != want {
		t.Errorf("protect = %s, want %s", protect, want)
	}
	auth, app := cfIndexOf(steps, "authentication", ""), cfIndexOf(steps, "reverse_proxy", "127.0.0.1:9080")
	if auth < 0 || app < 0 || auth >= i || i >= app {
		t.Errorf("authentication@%d, sms_stepup@%d, reverse_proxy@%d: want them in that order", auth, i, app)
	}
	// The plugin sets the X-Stepup-* headers itself: the recommended set-up
	// has no header_up, which would make reverse_proxy copy every header.
	if app >= 0 && steps[app].JSON["headers"] != nil {
		t.Errorf("the app's reverse_proxy has header operations %v: the example should need none", steps[app].JSON["headers"])
	}
}

package caddymodule

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// TestValidateRefusesBadValuesAlikeInJSONAndCaddyfile runs every bad value
// through both adapters: the Caddyfile's error must be Validate's message
// for the JSON config, at the line of the option it concerns.
func TestValidateRefusesBadValuesAlikeInJSONAndCaddyfile(t *testing.T) {
	t.Parallel()
	const required = "identity {http.auth.user.id}\n\t\tphone {http.request.header.X-Phone}\n\t\t"
	tests := []struct {
		name  string
		block string         // the directive's block after "sms_stepup {", one option a line
		json  map[string]any // over {"identity": ..., "phone": ...}
		line  int            // the line the Caddyfile error names
		want  string
	}{
		{"code_length 5 is too short", required + "code_length 5", map[string]any{"code_length": 5}, 5, "code_length 5: expected a whole number from 6 to 10"},
		{"code_length 11 is too long", required + "code_length 11", map[string]any{"code_length": 11}, 5, "code_length 11: expected a whole number from 6 to 10"},
		{"max_attempts 11 is too many", required + "max_attempts 11", map[string]any{"max_attempts": 11}, 5, "max_attempts 11: expected a whole number from 1 to 10"},
		{"failure_budget 101 is over the hard limit", required + "failure_budget 101", map[string]any{"failure_budget": 101}, 5, "failure_budget 101: expected a whole number from 1 to 100"},
		{"max_identities_per_number -1", required + "max_identities_per_number -1", map[string]any{"max_identities_per_number": -1}, 5, "max_identities_per_number -1: expected a whole number from 1 to 1000"},
		{"max_segments 50", required + "max_segments 50", map[string]any{"max_segments": 50}, 5, "max_segments 50: expected a whole number from 1 to 10"},
		{"max_calls 50", required + "max_calls 50", map[string]any{"max_calls": 50}, 5, "max_calls 50: expected a whole number from 1 to 5"},
		{"a negative phone limit", required + "limits {\n\t\t\tphone -1\n\t\t}", map[string]any{"limits": map[string]any{"phone": -1}}, 6, "limits.phone -1: expected a whole number from 0 to 100000000"},
		{"a limits window of 30s", required + "limits {\n\t\t\twindow 30s\n\t\t}", map[string]any{"limits": map[string]any{"window": "30s"}}, 6, "limits.window 30s: expected a duration such as 5m, from 1m to 24h"},
		{"a daily_budget over the most", required + "daily_budget 100000001", map[string]any{"limits": map[string]any{"daily_budget": 100000001}}, 5, "limits.daily_budget 100000001: expected a whole number from 0 to 100000000"},
		{"code_ttl over 10m", required + "code_ttl 11m", map[string]any{"code_ttl": "11m"}, 5, "code_ttl 11m: expected a duration such as 5m, more than 0 and at most 10m"},
		{"resend_cooldown over 10m", required + "resend_cooldown 11m", map[string]any{"resend_cooldown": "11m"}, 5, "resend_cooldown 11m: expected a duration such as 5m, more than 0 and at most 10m"},
		{"token_ttl over a day", required + "token_ttl 25h", map[string]any{"token_ttl": "25h"}, 5, "token_ttl 25h: expected a duration such as 5m, more than 0 and at most 24h"},
		{"a negative max_age", required + "max_age -5m", map[string]any{"max_age": "-5m"}, 5, "max_age -5m: expected a duration such as 5m, more than 0 and at most 24h"},
		{"max_age over the default token_ttl", required + "max_age 20m", map[string]any{"max_age": "20m"}, 5, "max_age 20m: expected at most token_ttl (15m)"},
		{"max_age over the token_ttl given", required + "token_ttl 10m\n\t\tmax_age 20m", map[string]any{"token_ttl": "10m", "max_age": "20m"}, 6, "max_age 20m: expected at most token_ttl (10m)"},
		{"revocation_refresh over 5m", required + "revocation_refresh 6m", map[string]any{"revocation_refresh": "6m"}, 5, "revocation_refresh 6m: expected a duration such as 10s, from 0 (the default, 10s) to 5m"},
		{"a negative revocation_refresh", required + "revocation_refresh -1s", map[string]any{"revocation_refresh": "-1s"}, 5, "revocation_refresh -1s: expected a duration such as 10s, from 0 (the default, 10s) to 5m"},
		{"path_prefix / would cover the site", required + "path_prefix /", map[string]any{"path_prefix": "/"}, 5, `path_prefix "/": expected a plain path such as /_stepup`},
		{"a plain http login_url", required + "login_url http://sso.example.com/", map[string]any{"login_url": "http://sso.example.com/"}, 5, `login_url "http://sso.example.com/": expected a path or an https:// URL`},
		{"a receipts_url with a path", required + "receipts_url https://app.example.com/x", map[string]any{"receipts_url": "https://app.example.com/x"}, 5, `receipts_url "https://app.example.com/x": expected this site's base URL such as https://app.example.com`},
		{"an unknown upstream header", required + "upstream_headers identity phone", map[string]any{"upstream_headers": []string{"identity", "phone"}}, 5, `upstream_headers "phone": expected identity, verified_at, auth_time and token, any of them, or none alone`},
		{"a realm with a slash", required + "realm a/b", map[string]any{"realm": "a/b"}, 5, `realm "a/b": expected a name of up to 64 letters, digits, '.', '_' and '-', such as corp`},
		{"headers_set_by anyone", required + "headers_set_by anyone", map[string]any{"headers_set_by": "anyone"}, 5, `headers_set_by "anyone": expected forward_auth`},
		{"a session_cookie with a separator", required + "session_cookie a@b", map[string]any{"session_cookie": "a@b"}, 5, `session_cookie "a@b": expected a cookie name such as _oauth2_proxy`},
		{"session and session_cookie both", required + "session {http.request.cookie.s}\n\t\tsession_cookie s", map[string]any{"session": "{http.request.cookie.s}", "session_cookie": "s"}, 6, "session and session_cookie: expected one of them, not both"},
		{"a brand colour that is not hex", required + "brand {\n\t\t\tcolor zz\n\t\t}", map[string]any{"brand": map[string]any{"color": "#zz"}}, 6, `brand color "#zz": expected 3 or 6 hex digits after #`},
		{"a brand logo from another origin", required + "brand {\n\t\t\tlogo_url https://cdn.example.net/logo.svg\n\t\t}", map[string]any{"brand": map[string]any{"logo_url": "https://cdn.example.net/logo.svg"}}, 6, `brand logo_url "https://cdn.example.net/logo.svg": expected a path on this site`},
		{"no identity", "phone {http.request.header.X-Phone}", map[string]any{"identity": ""}, 2, "identity is required: a placeholder naming the signed-in user"},
		{"no phone source", "identity {http.auth.user.id}", map[string]any{"phone": ""}, 2, "no phone source: expected phone <placeholder>, phone_file <path>, phone_source <sql|ldap|http> or enroll"},
		{"phone_source_cache without a phone_source", required + "phone_source_cache {\n\t\t\tfound 5m\n\t\t}", map[string]any{"phone_source_cache": map[string]any{"found": "5m"}}, 5,
			"phone_source_cache: expected at least one phone_source whose answers it keeps"},
		{"a phone_source_cache found over an hour", required + "phone_source http {\n\t\t\turl https://app.internal/users/{identity}\n\t\t\tfield phone\n\t\t}\n\t\tphone_source_cache {\n\t\t\tfound 2h\n\t\t}",
			map[string]any{"phone_sources": []any{map[string]any{"type": "http", "url": "https://app.internal/users/{identity}", "field": "phone"}}, "phone_source_cache": map[string]any{"found": "2h"}}, 10,
			"phone_source_cache.found 2h: expected a duration such as 5m, from 1s to 1h"},
		{"a fraud_guard window of 30s", required + "fraud_guard {\n\t\t\twindow 30s\n\t\t}", map[string]any{"fraud_guard": map[string]any{"window": "30s"}}, 6,
			"fraud_guard.window 30s: expected a duration such as 5m, from 1m to 24h"},
		{"a fraud_guard window in seconds", required + "fraud_guard {\n\t\t\twindow 90s\n\t\t}", map[string]any{"fraud_guard": map[string]any{"window": "90s"}}, 6,
			"fraud_guard.window 1m30s: expected whole minutes, such as 1h"},
		{"a fraud_guard min_sends over the most", required + "fraud_guard {\n\t\t\tmin_sends 100001\n\t\t}", map[string]any{"fraud_guard": map[string]any{"min_sends": 100001}}, 6,
			"fraud_guard.min_sends 100001: expected a whole number from 1 to 100000"},
		{"a fraud_guard block over a day", required + "fraud_guard {\n\t\t\tblock 25h\n\t\t}", map[string]any{"fraud_guard": map[string]any{"block": "25h"}}, 6,
			"fraud_guard.block 25h: expected a duration such as 5m, from 1m to 24h"},
		{"a fraud_guard max_block shorter than block", required + "fraud_guard {\n\t\t\tblock 2h\n\t\t\tmax_block 1h\n\t\t}",
			map[string]any{"fraud_guard": map[string]any{"block": "2h", "max_block": "1h"}}, 7, "fraud_guard.max_block 1h: expected at least block (2h)"},
		{"fraud_guard off with a setting", required + "fraud_guard off {\n\t\t\tmin_sends 5\n\t\t}", map[string]any{"fraud_guard": map[string]any{"off": true, "min_sends": 5}}, 5,
			"fraud_guard off: expected no other fraud_guard settings with it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]any{"identity": "{http.auth.user.id}", "phone": "{http.request.header.X-Phone}"}
			maps.Copy(cfg, tc.json)
			raw, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var h Handler
			if err := json.Unmarshal(raw, &h); err != nil {
				t.Fatalf("unmarshal %s: %v", raw, err)
			}
			jsonErr := h.Validate()
			if jsonErr == nil || !strings.HasPrefix(jsonErr.Error(), tc.want) {
				t.Fatalf("JSON %s: Validate error %v, want one starting %q", raw, jsonErr, tc.want)
			}

			caddyfile := "example.com {\n\tsms_stepup {\n\t\t" + tc.block + "\n\t}\n}\n"
			_, _, cfErr := cfAdapt([]byte(caddyfile))
			want := fmt.Sprintf("%s, at Caddyfile:%d", jsonErr, tc.line)
			if cfErr == nil || !strings.HasSuffix(cfErr.Error(), want) {
				t.Fatalf("Caddyfile\n%s: error %v, want one ending %q", caddyfile, cfErr, want)
			}
		})
	}
}

// TestCaddyfileRefusesAnExplicitZeroWhereJSONsZeroIsTheDefault: in JSON
// 0 is an option left unset, so a Caddyfile's 0 can't mean "none"; it is
// refused with the range message, not turned into the default.
func TestCaddyfileRefusesAnExplicitZeroWhereJSONsZeroIsTheDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{"max_calls 0", "max_calls 0: expected a whole number from 1 to 5, at Testfile:4"},
		{"max_attempts 0", "max_attempts 0: expected a whole number from 1 to 10, at Testfile:4"},
		{"code_ttl 0s", "code_ttl 0s: expected a duration such as 5m, more than 0 and at most 10m, at Testfile:4"},
		{"token_ttl 0", "token_ttl 0s: expected a duration such as 5m, more than 0 and at most 24h, at Testfile:4"},
	} {
		t.Run(tc.line+" is refused", func(t *testing.T) {
			_, err := cfParse(cfWith(tc.line))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := cfParse(cfWith("revocation_refresh 0")); err != nil {
		t.Errorf("revocation_refresh 0 (its default) refused: %v", err)
	}
}

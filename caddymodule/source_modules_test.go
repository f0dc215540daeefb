package caddymodule

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestPhoneSourceModulesCaddyfile parses each phone source's block: every
// option into its JSON, and each mistake refused with what was expected.
func TestPhoneSourceModulesCaddyfile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, input string
		module      func() caddyfile.Unmarshaler
		want        string // the module's JSON
		err         string
	}{
		{name: "sql reads every option", module: func() caddyfile.Unmarshaler { return new(SQLPhoneSource) }, input: `sql {
				name      app-db
				driver    postgres
				dsn       {env.APP_DB_DSN}
				query     "SELECT mobile FROM users WHERE login = $1"
				timeout   2s
				max_conns 8
			}`,
			want: `{"name":"app-db","driver":"postgres","dsn":"{env.APP_DB_DSN}","query":"SELECT mobile FROM users WHERE login = $1","timeout":2000000000,"max_conns":8}`},
		{name: "sql without a query is refused", module: func() caddyfile.Unmarshaler { return new(SQLPhoneSource) },
			input: "sql {\n driver sqlite\n dsn /var/app.db\n}", err: "phone_source sql: expected driver, dsn and query in its block"},
		{name: "sql takes no argument", module: func() caddyfile.Unmarshaler { return new(SQLPhoneSource) },
			input: "sql postgres", err: `phone_source sql takes no argument, got "postgres"`},
		{name: "sql refuses an unknown option with the list", module: func() caddyfile.Unmarshaler { return new(SQLPhoneSource) },
			input: "sql {\n table users\n}", err: `unknown sql phone source option "table": expected name, driver, dsn, query, timeout or max_conns`},
		{name: "sql refuses a timeout over 30s", module: func() caddyfile.Unmarshaler { return new(SQLPhoneSource) },
			input: "sql {\n timeout 1m\n}", err: `timeout "1m": expected a duration such as 5m, more than 0 and at most 30s`},
		{name: "sql refuses max_conns 0", module: func() caddyfile.Unmarshaler { return new(SQLPhoneSource) },
			input: "sql {\n max_conns 0\n}", err: `max_conns "0": expected a whole number from 1 to 100`},
		{name: "ldap reads every option", module: func() caddyfile.Unmarshaler { return new(LDAPPhoneSource) }, input: `ldap {
				name            directory
				url             ldaps://ad.example.com
				start_tls
				ca_file         /etc/ssl/ad-ca.pem
				allow_plaintext
				bind_dn         "cn=reader,dc=example,dc=com"
				bind_password   {env.LDAP_PASSWORD}
				base_dn         "ou=people,dc=example,dc=com"
				filter          "(sAMAccountName={identity})"
				attribute       mobile
				timeout         5s
			}`,
			want: `{"name":"directory","url":"ldaps://ad.example.com","start_tls":true,"ca_file":"/etc/ssl/ad-ca.pem","allow_plaintext":true,` +
				`"bind_dn":"cn=reader,dc=example,dc=com","bind_password":"{env.LDAP_PASSWORD}","base_dn":"ou=people,dc=example,dc=com",` +
				`"filter":"(sAMAccountName={identity})","attribute":"mobile","timeout":5000000000}`},
		{name: "ldap without a filter is refused", module: func() caddyfile.Unmarshaler { return new(LDAPPhoneSource) },
			input: "ldap {\n url ldaps://ad\n base_dn dc=x\n}", err: "phone_source ldap: expected url, base_dn and filter in its block"},
		{name: "ldap's start_tls takes no value", module: func() caddyfile.Unmarshaler { return new(LDAPPhoneSource) },
			input: "ldap {\n start_tls yes\n}", err: `start_tls takes no value, got "yes"`},
		{name: "http reads every option, header more than once", module: func() caddyfile.Unmarshaler { return new(HTTPPhoneSource) }, input: `http {
				name            app-api
				url             "https://app.internal/users/{identity}"
				field           user.mobile
				header          Authorization "Bearer {env.APP_API_TOKEN}"
				header          X-Caller stepup
				ca_file         /etc/ssl/app-ca.pem
				allow_plaintext
				timeout         1s
			}`,
			want: `{"name":"app-api","url":"https://app.internal/users/{identity}","field":"user.mobile",` +
				`"header":{"Authorization":["Bearer {env.APP_API_TOKEN}"],"X-Caller":["stepup"]},"ca_file":"/etc/ssl/app-ca.pem","allow_plaintext":true,"timeout":1000000000}`},
		{name: "http without a field is refused", module: func() caddyfile.Unmarshaler { return new(HTTPPhoneSource) },
			input: "http {\n url https://app/users/{identity}\n}", err: "phone_source http: expected url and field in its block"},
		{name: "http's header needs a name and a value", module: func() caddyfile.Unmarshaler { return new(HTTPPhoneSource) },
			input: "http {\n header Authorization\n}", err: "header: expected a name and a value"},
		{name: "an error names the line", module: func() caddyfile.Unmarshaler { return new(HTTPPhoneSource) },
			input: "http {\n url https://app/users/{identity}\n\n nope x\n}", err: "Testfile:4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCaddyfileModule(t, tc.module(), tc.input, tc.want, tc.err)
		})
	}
}

// TestPhoneSourcesInTheSmsStepupBlock: phone_source blocks are kept in
// order as modules of their namespace, with phone_source_cache beside them.
func TestPhoneSourcesInTheSmsStepupBlock(t *testing.T) {
	t.Parallel()
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`sms_stepup {
		identity {http.auth.user.id}
		phone_source sql {
			driver sqlite
			dsn /var/lib/app/app.db
			query "SELECT mobile FROM users WHERE login = ?"
		}
		phone_source http {
			url "https://app.internal/users/{identity}"
			field phone
		}
		phone_source_cache {
			found 10m
			not_found 30s
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, raw := range h.PhoneSourcesRaw {
		var m struct{ Type string }
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		types = append(types, m.Type)
	}
	if strings.Join(types, ",") != "sql,http" {
		t.Errorf("phone sources %q, want sql then http", types)
	}
	if c := h.PhoneSourceCache; c == nil || c.Found != caddy.Duration(10*60e9) || c.NotFound != caddy.Duration(30e9) {
		t.Errorf("phone_source_cache %+v, want found 10m and not_found 30s", c)
	}
}

// TestPhoneSourceProvisionRefusesBadConfig: what only the library can
// check fails the load with the option and what was expected, and a
// placeholder that expands to nothing stops the load.
func TestPhoneSourceProvisionRefusesBadConfig(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "app.db")
	for _, tc := range []struct {
		name string
		mod  caddy.Provisioner
		err  string
	}{
		{"a query that splices the identity", &SQLPhoneSource{Driver: "sqlite", DSN: db, Query: "SELECT mobile FROM users WHERE login = '{identity}'"},
			"write ? where the identity goes"},
		{"a postgres query written with ?", &SQLPhoneSource{Driver: "postgres", DSN: "postgres://db/app", Query: "SELECT mobile FROM users WHERE login = ?"},
			"expected exactly one parameter, written $1"},
		{"an unknown driver", &SQLPhoneSource{Driver: "oracle", DSN: "x", Query: "SELECT 1"}, `driver "oracle": expected postgres, mysql or sqlite`},
		{"a dsn whose placeholder is unknown", &SQLPhoneSource{Driver: "sqlite", DSN: "{env.SMS_STEPUP_TEST_UNSET_DSN}", Query: "SELECT mobile FROM users WHERE login = ?"},
			"phone_source sql dsn"},
		{"plain ldap to another host", &LDAPPhoneSource{URL: "ldap://ad.example.com", BaseDN: "dc=x", Filter: "(uid={identity})"}, "ldap"},
		{"an API URL without {identity}", &HTTPPhoneSource{URL: "https://app.internal/users", Field: "phone"}, "expected {identity} in its path or query"},
		{"a header whose placeholder is unknown", &HTTPPhoneSource{URL: "https://app.internal/users/{identity}", Field: "phone",
			Header: map[string][]string{"Authorization": {"{env.SMS_STEPUP_TEST_UNSET_TOKEN}"}}}, "phone_source http header Authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := tc.mod.Provision(ctx)
			if c, ok := tc.mod.(caddy.CleanerUpper); ok {
				defer c.Cleanup()
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// TestReadmePhoneSourceExampleAdapts adapts the README's phone source
// example in a site and provisions its sources, so the README can't show
// a block that fails to load.
func TestReadmePhoneSourceExampleAdapts(t *testing.T) {
	block := readmeCaddyfileBlock(t, func(b string) bool { return strings.Contains(b, "phone_source sql {") })
	if block == "" {
		t.Fatal("the README has no caddyfile block with `phone_source sql {`")
	}
	indented := regexp.MustCompile("(?m)^").ReplaceAllString(strings.TrimSuffix(block, "\n"), "\t")
	out, warnings, err := cfAdapt([]byte("example.com {\n" + indented + "\n}\n"))
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the README's phone source example does not adapt: %v %v\n%s", err, warnings, block)
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	sources, _ := findKey(cfg, "phone_sources").([]any)
	if len(sources) != 3 || findKey(cfg, "phone_source_cache") == nil {
		t.Fatalf("adapted phone_sources %v and cache %v, want three sources and the cache\n%s", sources, findKey(cfg, "phone_source_cache"), out)
	}
	t.Setenv("APP_DB_DSN", "postgres://reader@127.0.0.1:1/app")
	t.Setenv("LDAP_PASSWORD", "secret")
	t.Setenv("APP_API_TOKEN", "token")
	for i, want := range []caddy.Module{new(SQLPhoneSource), new(LDAPPhoneSource), new(HTTPPhoneSource)} {
		fields, _ := sources[i].(map[string]any)
		if fields["type"] != string(want.CaddyModule().ID.Name()) {
			t.Fatalf("source %d is %v, want %s", i, fields["type"], want.CaddyModule().ID.Name())
		}
		delete(fields, "type")
		raw, _ := json.Marshal(fields)
		if err := json.Unmarshal(raw, want); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := want.(caddy.Provisioner).Provision(ctx)
		cancel()
		if err != nil {
			t.Errorf("the README's phone_source %s does not provision: %v", want.CaddyModule().ID.Name(), err)
		}
		_ = want.(caddy.CleanerUpper).Cleanup()
	}
}

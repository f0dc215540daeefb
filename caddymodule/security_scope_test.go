package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap/zaptest"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The boundaries of a deployment with several sites and handlers: a
// step-up is good only for the handler (or realm) that made it
// (SECURITY.md rule 26), every route checks its own freshness (27), and
// nothing the client sends names the service (30).

// scSites sets the site addresses the Caddyfile adapter would write.
func scSites(sites ...string) func(*Handler) {
	return func(h *Handler) { h.Sites = sites }
}

// scRealm puts the handler in realm on its own site.
func scRealm(realm, site string) func(*Handler) {
	return func(h *Handler) { h.Realm, h.Sites = realm, []string{site} }
}

// scCaddyGlobals serialises what sets Caddy's process-wide state
// (provisioning a config's storage makes it certmagic's default), so that
// parallel subtests do not race on it.
var scCaddyGlobals sync.Mutex

// scAdaptConfig adapts a Caddyfile into the config Caddy would load.
func scAdaptConfig(t *testing.T, caddyfile string) (*caddy.Config, []byte) {
	t.Helper()
	out, warnings, err := cfAdapt([]byte(caddyfile))
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapt: %v %v\n%s", err, warnings, caddyfile)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg, out
}

// scLoad adapts a Caddyfile and provisions its sms_stepup handlers as one
// config load does, in one context with the config's storage (where a
// handler without signing_key finds the one generated key), keyed by
// their first site. Each outbox is dir/<site>.jsonl.
func scLoad(t *testing.T, dir, caddyfile string) map[string]*htEnv {
	t.Helper()
	cfg, out := scAdaptConfig(t, caddyfile)
	scCaddyGlobals.Lock()
	base, err := caddy.ProvisionContext(&caddy.Config{StorageRaw: cfg.StorageRaw})
	scCaddyGlobals.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(base)
	t.Cleanup(cancel)
	refs, err := findHandlers(out)
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]*htEnv{}
	for _, ref := range refs {
		mod, err := ctx.LoadModuleByID("http.handlers.sms_stepup", ref.raw)
		if err != nil {
			t.Fatalf("provision %s: %v", ref.label(), err)
		}
		h := mod.(*Handler)
		h.logger = zaptest.NewLogger(t)
		envs[h.Sites[0]] = &htEnv{t: t, h: h, clock: htNewClock(), outbox: filepath.Join(dir, h.Sites[0]+".jsonl")}
	}
	return envs
}

// scValidate adapts (unless it is JSON) and validates a config the way
// `caddy validate` and a config load do: every module provisioned.
func scValidate(t *testing.T, config string) error {
	t.Helper()
	cfg := new(caddy.Config)
	if strings.HasPrefix(config, "{\"") {
		if err := json.Unmarshal([]byte(config), cfg); err != nil {
			t.Fatal(err)
		}
	} else {
		cfg, _ = scAdaptConfig(t, config)
	}
	scCaddyGlobals.Lock()
	defer scCaddyGlobals.Unlock()
	return caddy.Validate(cfg)
}

// scSite is a site block of a Caddyfile with one sms_stepup handler.
func scSite(address string, lines ...string) string {
	return address + " {\n\tsms_stepup /settings* {\n\t\tidentity {http.auth.user.id}\n\t\t" + strings.Join(lines, "\n\t\t") + "\n\t}\n}\n"
}

// scGlobal is a Caddyfile's global options for a config that is only
// provisioned: storage of its own, no certificates.
func scGlobal(dir string) string {
	return fmt.Sprintf("{\n\tstorage file_system %s\n\tauto_https off\n}\n", filepath.Join(dir, "storage"))
}

// scStore is a store line naming a memory store of the test's own.
func scStore() string {
	return fmt.Sprintf("store memory sc-%d-%d", os.Getpid(), htSeq.Add(1))
}

func scPhones(t *testing.T, dir string, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, "phones.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// scPost posts form to path with the browser's CSRF token set to token.
func scPost(b *htBrowser, path, token string) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	return b.do(http.MethodPost, path, url.Values{"csrf": {token}, "r": {"/settings"}})
}

func TestSecurityRule26_StepUpGoodOnlyForItsHandler(t *testing.T) {
	t.Parallel()
	t.Run("a cookie of site A, where the user enrolled their own number, does not open site B, whose number comes from phone_file, though one generated key signs both", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		const alicesPhone = "+818011112222"
		phones := scPhones(t, dir, "r26-alice,"+alicesPhone)
		envs := scLoad(t, dir, scGlobal(dir)+
			scSite("a.example.com", "enroll", scStore(), "gateway console {\n\t\t\toutbox "+filepath.Join(dir, "a.example.com.jsonl")+"\n\t\t}")+
			scSite("b.example.com", "phone_file "+phones, scStore(), "gateway console {\n\t\t\toutbox "+filepath.Join(dir, "b.example.com.jsonl")+"\n\t\t}"))
		a, b := envs["a.example.com"], envs["b.example.com"]
		if a == nil || b == nil || a.h.keys.ID != b.h.keys.ID || a.h.SigningKey != "" {
			t.Fatalf("want two handlers, a.example.com and b.example.com, under one generated key: %v", envs)
		}
		// With only alice's password, on site A: enrol one's own number.
		attacker := secBrowser(t, a, "r26-alice")
		if w, body := enEnrol(t, a, attacker, "090-1234-5678", htNumber); w.StatusCode != http.StatusSeeOther {
			t.Fatalf("enrol on site A: %d\n%s", w.StatusCode, body)
		}
		attacker.wantPass("site A, where the number was enrolled")
		onB := secBrowser(t, b, "r26-alice")
		onB.setCookie("__Host-stepup", attacker.cookie("__Host-stepup"))
		onB.wantStepUp("site B with site A's cookie")
		if n := len(b.messages()); n != 0 {
			t.Fatalf("site B sent %d messages", n)
		}
	})
	t.Run("two handlers of one site with different path_prefix refuse each other's cookies", func(t *testing.T) {
		t.Parallel()
		clock := htNewClock()
		shop := htNew(t, clock, scSites("app.example.com"))
		admin := htNew(t, clock, secAll(scSites("app.example.com"), func(h *Handler) { h.PathPrefix = "/_admin_stepup" }))
		b := secBrowser(t, shop, "r26-prefix")
		b.stepUp()
		if !secPasses(t, shop, "r26-prefix", b.cookie("__Host-stepup")) {
			t.Fatal("control: the cookie does not pass on its own handler")
		}
		if secPasses(t, admin, "r26-prefix", b.cookie("__Host-stepup")) {
			t.Fatal("the handler at /_admin_stepup took the cookie of the one at /_stepup")
		}
	})
	t.Run("a token naming another scope, re-signed with the server's own key, is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, scSites("app.example.com"))
		b := secBrowser(t, e, "r26-aud")
		b.stepUp()
		genuine := b.cookie("__Host-stepup")
		hdr, claims := secTokenPart(t, genuine, 0), secTokenPart(t, genuine, 1)
		key := secTokenKey(htKey)
		if !secPasses(t, e, "r26-aud", secJWT(sha256.New, key, hdr, claims)) {
			t.Fatal("control: the genuine claims re-signed by the test are refused")
		}
		for name, aud := range map[string]any{
			"the audience tokens had before scopes":           []string{"caddy-sms-stepup"},
			"another site's scope":                            []string{"urn:caddy-sms-stepup:site:b.example.com:%2F_stepup"},
			"the same site under another path_prefix":         []string{"urn:caddy-sms-stepup:site:app.example.com:%2F_other"},
			"a realm's scope":                                 []string{"urn:caddy-sms-stepup:realm:corp"},
			"the site's scope spelled in capitals":            []string{"urn:caddy-sms-stepup:site:APP.EXAMPLE.COM:%2F_stepup"},
			"the scope of a handler that knows no site":       []string{"urn:caddy-sms-stepup:listen::%2F_stepup"},
			"no audience":                                     nil,
			"the site's scope as a prefix of a longer string": []string{e.h.audience + "x"},
		} {
			if secPasses(t, e, "r26-aud", secJWT(sha256.New, key, hdr, secWith(claims, "aud", aud))) {
				t.Errorf("a token with %s (%v) passed", name, aud)
			}
		}
	})
	t.Run("handlers of one realm take each other's step-ups, and no handler outside it does", func(t *testing.T) {
		t.Parallel()
		clock := htNewClock()
		shop := htNew(t, clock, scRealm("corp", "shop.example.com"))
		admin := htNew(t, clock, secAll(scRealm("corp", "admin.example.com"), func(h *Handler) { h.PathPrefix = "/_admin_stepup" }))
		other := htNew(t, clock, scRealm("other", "admin.example.com"))
		alone := htNew(t, clock, scSites("shop.example.com"))
		b := secBrowser(t, shop, "r26-realm")
		b.stepUp()
		cookie := b.cookie("__Host-stepup")
		if !secPasses(t, admin, "r26-realm", cookie) {
			t.Error("a handler of the same realm refused the step-up")
		}
		if secPasses(t, other, "r26-realm", cookie) {
			t.Error("a handler of another realm took the step-up")
		}
		if secPasses(t, alone, "r26-realm", cookie) {
			t.Error("a handler of the same site outside the realm took the step-up")
		}
	})
	t.Run("a realm whose handlers take the phone number from different sources is refused when a Caddyfile is loaded", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		phones := scPhones(t, dir, "alice,"+htNumber)
		err := scValidate(t, scGlobal(dir)+
			scSite("http://a.example.com", "realm corp", "enroll", "signing_key "+htKey)+
			scSite("http://b.example.com", "realm corp", "phone_file "+phones, "signing_key "+htKey))
		if err == nil {
			t.Fatal("the config loaded")
		}
		for _, want := range []string{`realm "corp"`, "http://a.example.com", "http://b.example.com", "phone_file (", `"` + phones + `"`, "enroll ("} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error does not say %q:\n%v", want, err)
			}
		}
		if err := scValidate(t, scGlobal(dir)+
			scSite("http://a.example.com", "realm corp", "phone_file "+phones, "signing_key "+htKey)+
			scSite("http://b.example.com", "realm corp", "phone_file "+phones, "signing_key "+htKey)); err != nil {
			t.Fatalf("control: a realm sharing its phone source was refused: %v", err)
		}
	})
	t.Run("a realm whose handlers differ in identity, store or signing key is refused when a JSON config is loaded", func(t *testing.T) {
		t.Parallel()
		handler := func(prefix, identity, store, key string) string {
			return fmt.Sprintf(`{"handler":"sms_stepup","realm":"corp","path_prefix":%q,"identity":%q,"phone":"{http.request.header.X-Phone}","signing_key":%q,"store":{"type":"memory","name":%q}}`,
				prefix, identity, key, store)
		}
		config := func(a, b string) string {
			return `{"storage":{"module":"file_system","root":` + fmt.Sprintf("%q", filepath.Join(t.TempDir(), "storage")) + `},"apps":{"http":{"servers":{"srv0":{"listen":[":8080"],"routes":[` +
				`{"match":[{"host":["a.example.com"]}],"handle":[` + a + `]},{"match":[{"host":["b.example.com"]}],"handle":[` + b + `]}]}}}}}`
		}
		const otherKey = "another-signing-key-0123456789abcdefghij"
		store := fmt.Sprintf("sc-json-%d", os.Getpid())
		for _, tc := range []struct {
			name, b string
			want    []string
		}{
			{"another identity placeholder", handler("/_b", "{http.request.header.X-User}", store, htKey),
				[]string{`identity ("{http.auth.user.id}", and "{http.request.header.X-User}")`}},
			{"another store", handler("/_b", "{http.auth.user.id}", store+"-b", htKey), []string{"differ in store"}},
			{"another signing key", handler("/_b", "{http.auth.user.id}", store, otherKey), []string{"differ in signing key"}},
			{"a looser phone policy", strings.Replace(handler("/_b", "{http.auth.user.id}", store, htKey), `"realm":"corp"`, `"realm":"corp","allow_types":["mobile","voip"]`, 1),
				[]string{"differ in the phone policy"}},
			{"a carrier lookup the other has not", strings.Replace(handler("/_b", "{http.auth.user.id}", store, htKey), `"realm":"corp"`,
				`"realm":"corp","lookup":{"provider":"http","url":"https://numbers.example/carrier","field":"type"}`, 1), []string{"differ in lookup"}},
			// A code one handler issues is checked by whichever the user
			// types it into, and its step-up passes both: the longer code
			// and the fewer attempts would be a promise the realm breaks.
			{"a longer code", strings.Replace(handler("/_b", "{http.auth.user.id}", store, htKey), `"realm":"corp"`, `"realm":"corp","code_length":8`, 1),
				[]string{`code_length ("6", and "8")`}},
			{"more attempts at a code", strings.Replace(handler("/_b", "{http.auth.user.id}", store, htKey), `"realm":"corp"`, `"realm":"corp","max_attempts":10`, 1),
				[]string{`max_attempts ("5", and "10")`}},
			// The identity's wrong codes are counted once, in the store; a
			// looser budget on one handler is where a guesser would go.
			{"a looser failure budget", strings.Replace(handler("/_b", "{http.auth.user.id}", store, htKey), `"realm":"corp"`, `"realm":"corp","failure_budget":100`, 1),
				[]string{`failure_budget ("10", and "100")`}},
		} {
			err := scValidate(t, config(handler("/_a", "{http.auth.user.id}", store, htKey), tc.b))
			if err == nil {
				t.Errorf("%s: the config loaded", tc.name)
				continue
			}
			for _, want := range append(tc.want, `realm "corp"`, "path_prefix /_a", "path_prefix /_b") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: the error does not say %q:\n%v", tc.name, want, err)
				}
			}
			if strings.Contains(err.Error(), otherKey) || strings.Contains(err.Error(), htKey) {
				t.Errorf("%s: the error shows a signing key:\n%v", tc.name, err)
			}
		}
		if err := scValidate(t, config(handler("/_a", "{http.auth.user.id}", store, htKey), handler("/_b", "{http.auth.user.id}", store, htKey))); err != nil {
			t.Fatalf("control: a realm sharing everything it must was refused: %v", err)
		}
		explicit := strings.Replace(handler("/_b", "{http.auth.user.id}", store, htKey), `"realm":"corp"`, `"realm":"corp","code_length":6,"max_attempts":5`, 1)
		if err := scValidate(t, config(handler("/_a", "{http.auth.user.id}", store, htKey), explicit)); err != nil {
			t.Fatalf("control: a realm whose handlers write out the default code_length and max_attempts was refused: %v", err)
		}
	})
	t.Run("handlers that would share a scope without a realm are refused, in a JSON config that names no sites and in one Caddyfile site", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		phones := scPhones(t, dir, "alice,"+htNumber)
		handler := func(source string) string {
			return `{"handler":"sms_stepup","identity":"{http.auth.user.id}",` + source + `,"signing_key":"` + htKey + `"}`
		}
		jsonConfig := func(a, b string) string {
			return `{"apps":{"http":{"servers":{"srv0":{"listen":[":8080"],"routes":[` +
				`{"match":[{"host":["a.example.com"]}],"handle":[` + a + `]},{"match":[{"host":["b.example.com"]}],"handle":[` + b + `]}]}}}}}`
		}
		block := func(path, source string) string {
			return "\thandle " + path + " {\n\t\tsms_stepup {\n\t\t\tidentity {http.auth.user.id}\n\t\t\t" + source + "\n\t\t\tsigning_key " + htKey + "\n\t\t}\n\t}\n"
		}
		for name, config := range map[string]string{
			"JSON":      jsonConfig(handler(`"enroll":true`), handler(`"phone_file":"`+phones+`"`)),
			"Caddyfile": scGlobal(dir) + "http://app.example.com {\n" + block("/shop*", "enroll") + block("/admin*", "phone_file "+phones) + "}\n",
		} {
			err := scValidate(t, config)
			if err == nil || !strings.Contains(err.Error(), "would accept each other's step-ups") || !strings.Contains(err.Error(), "realm") {
				t.Errorf("%s: %v, want a refusal saying the handlers would accept each other's step-ups", name, err)
			}
		}
		// Copies of one handler config check the same things: one site
		// block on two ports puts its handler in two servers.
		twins := scGlobal(dir) + "http://app.example.com:8080, http://app.example.com:8081 {\n" + block("/shop*", "phone_file "+phones) + "}\n"
		if err := scValidate(t, twins); err != nil {
			t.Errorf("control: one handler config in two servers was refused: %v", err)
		}
		if err := scValidate(t, jsonConfig(handler(`"enroll":true`), handler(`"enroll":true`))); err != nil {
			t.Errorf("control: one handler config under two hosts was refused: %v", err)
		}
	})
	t.Run("a CSRF token from one handler's page is refused by another's, though they share the nonce cookie and the key", func(t *testing.T) {
		t.Parallel()
		clock := htNewClock()
		a := htNew(t, clock, scSites("a.example.com"))
		b := htNew(t, clock, scSites("b.example.com"))
		onA := secBrowser(t, a, "r26-csrf")
		token := onA.csrf()
		onB := secBrowser(t, b, "r26-csrf")
		onB.jar = onA.jar
		w, body := scPost(onB, "/_stepup/send", token)
		htWant(t, "a form post to B with A's token", w, body, http.StatusForbidden, "")
		w, body = onB.do(http.MethodPost, "/_stepup/api/send", nil, "X-CSRF-Token: "+token, "Content-Type: application/json")
		if w.Code != http.StatusForbidden {
			t.Errorf("an API call to B with A's token: %d\n%s", w.Code, body)
		}
		if n := len(b.messages()); n != 0 {
			t.Fatalf("B sent %d messages on A's token", n)
		}
		onB.token = ""
		w, body = scPost(onB, "/_stepup/send", onB.csrf())
		htWant(t, "control: B's own token", w, body, http.StatusSeeOther, "")
	})
	t.Run("a CSRF token is taken just under an hour after its page, and refused just over", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		under, over := secBrowser(t, e, "r26-under"), secBrowser(t, e, "r26-over")
		underToken, overToken := under.csrf(), over.csrf()
		e.clock.Add(otp.CSRFLifetime - time.Second)
		w, body := scPost(under, "/_stepup/send", underToken)
		htWant(t, "a send 59m59s after the page", w, body, http.StatusSeeOther, "")
		e.clock.Add(2 * time.Second)
		w, body = scPost(over, "/_stepup/send", overToken)
		htWant(t, "a send 1h1s after the page", w, body, http.StatusForbidden, "")
		if n := len(e.messages()); n != 1 {
			t.Fatalf("%d messages sent, want 1", n)
		}
	})
}

func TestSecurityRule27_FreshnessCheckedByEveryRoute(t *testing.T) {
	t.Parallel()
	t.Run("a 15-minute cookie of a realm passes a token_ttl 5s handler of the realm without max_age for 5 s, and not 1 ms more", func(t *testing.T) {
		t.Parallel()
		clock := htNewClock()
		lenient := htNew(t, clock, scRealm("r27", "app.example.com"))
		strict := htNew(t, clock, secAll(scRealm("r27", "admin.example.com"), func(h *Handler) { h.TokenTTL = caddy.Duration(5 * time.Second) }))
		b := secBrowser(t, lenient, "r27-ttl")
		b.stepUp()
		onStrict := secBrowser(t, strict, "r27-ttl")
		onStrict.setCookie("__Host-stepup", b.cookie("__Host-stepup"))
		clock.Add(5*time.Second - time.Millisecond)
		onStrict.wantPass("the 5 s route just under 5 s")
		clock.Add(2 * time.Millisecond)
		onStrict.wantStepUp("the 5 s route just over 5 s")
		b.wantPass("control: the 15-minute route")
	})
	t.Run("max_age left unset is the route's token_ttl: a 5m route refuses what an explicit max_age 5m refuses", func(t *testing.T) {
		t.Parallel()
		clock := htNewClock()
		maker := htNew(t, clock, scRealm("r27", "app.example.com"))
		unset := htNew(t, clock, secAll(scRealm("r27", "a.example.com"), func(h *Handler) { h.TokenTTL = caddy.Duration(5 * time.Minute) }))
		explicit := htNew(t, clock, secAll(scRealm("r27", "b.example.com"), func(h *Handler) { h.MaxAge = caddy.Duration(5 * time.Minute) }))
		b := secBrowser(t, maker, "r27-unset")
		b.stepUp()
		for _, step := range []struct {
			wait time.Duration
			pass bool
		}{{5*time.Minute - time.Second, true}, {2 * time.Second, false}} {
			clock.Add(step.wait)
			for name, e := range map[string]*htEnv{"token_ttl 5m": unset, "max_age 5m": explicit} {
				if got := secPasses(t, e, "r27-unset", b.cookie("__Host-stepup")); got != step.pass {
					t.Errorf("%s at %s: passed %t, want %t", name, clock.Now().Sub(b.tokenAt), got, step.pass)
				}
				w, _ := secBrowser(t, e, "r27-unset").get("/settings", "Accept: application/json")
				if wa := w.Header().Get("WWW-Authenticate"); !strings.Contains(wa, `max_age="300"`) {
					t.Errorf("%s: the JSON challenge says %q, want max_age=\"300\"", name, wa)
				}
			}
		}
	})
	t.Run("a step-up verified later in the second of a revocation passes", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r27-after")
		e.clock.Add(300 * time.Millisecond)
		if _, err := e.h.service.Revoke(context.Background(), "r27-after"); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(400 * time.Millisecond)
		b.stepUp()
		b.wantPass("a step-up 400 ms after the revocation, in the same second")
	})
	t.Run("a step-up verified earlier in the second of a revocation is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r27-before")
		e.clock.Add(100 * time.Millisecond)
		b.stepUp()
		b.wantPass("before the revocation")
		e.clock.Add(500 * time.Millisecond)
		if _, err := e.h.service.Revoke(context.Background(), "r27-before"); err != nil {
			t.Fatal(err)
		}
		b.wantStepUp("a step-up 500 ms before the revocation, in the same second")
	})
}

// scBrand is how a page shows the service's name.
func scBrand(name string) string { return `<span class="brand">` + name + `</span>` }

func TestSecurityRule30_ServiceNeverNamedByTheClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, evil, want string
		configure        func(*Handler)
	}{
		{"with service_name unset, the page and the SMS name the site's address, whatever Host the client sends", "evil.example", "app.example.com", scSites("app.example.com", "www.example.com")},
		{"a wildcard site is named by its domain, not by the host a client picks under it", "evil.example.com", "example.com", scSites("*.example.com")},
		{"a catch-all site is named by a fixed neutral name", "evil.example", neutralServiceName, scSites(":8443")},
		{"a handler that knows no site is named by the neutral name", "evil.example", neutralServiceName, nil},
		{"service_name, when set, names the service on any site", "evil.example", "Example Corp", secAll(scSites("*.example.com"), func(h *Handler) { h.ServiceName = "Example Corp" })},
		{"a site address too long for one SMS gives way to the neutral name rather than failing the config", "evil.example", neutralServiceName, scSites("a-very-long-host-name-for-a-step-up.example.com")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, tc.configure)
			b := secBrowser(t, e, "r30-alice")
			hostile := []string{"X-Forwarded-Host: " + tc.evil, "Forwarded: host=" + tc.evil}
			r := b.request(http.MethodGet, "/_stepup/?r=%2Fsettings", nil, hostile...)
			r.Host = tc.evil
			w, body := secServe(b, r)
			if w.Code != http.StatusOK || !strings.Contains(body, scBrand(tc.want)) || strings.Contains(body, tc.evil) {
				t.Fatalf("the page for Host %s: %d, want it to name %q and never the Host:\n%s", tc.evil, w.Code, tc.want, body)
			}
			r = b.request(http.MethodPost, "/_stepup/send", url.Values{"csrf": {b.csrf()}, "r": {"/settings"}}, hostile...)
			r.Host = tc.evil
			if w, body := secServe(b, r); w.Code != http.StatusSeeOther {
				t.Fatalf("send: %d\n%s", w.Code, body)
			}
			msgs := e.messages()
			if len(msgs) != 1 || !strings.Contains(msgs[0].Body, tc.want) || strings.Contains(msgs[0].Body, tc.evil) {
				t.Fatalf("the SMS %+v: want it to name %q and never %q", msgs, tc.want, tc.evil)
			}
		})
	}
	t.Run("the Caddyfile adapter gives the handler its site block's addresses, and the first names the service", func(t *testing.T) {
		t.Parallel()
		_, out := scAdaptConfig(t, scSite("app.example.com, *.app.example.com", "phone {http.request.header.X-Phone}", "signing_key "+htKey))
		refs, err := findHandlers(out)
		if err != nil || len(refs) != 1 {
			t.Fatalf("handlers %v, %v", refs, err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		mod, err := ctx.LoadModuleByID("http.handlers.sms_stepup", refs[0].raw)
		if err != nil {
			t.Fatal(err)
		}
		h := mod.(*Handler)
		if want := []string{"app.example.com", "*.app.example.com"}; strings.Join(h.Sites, " ") != strings.Join(want, " ") || h.serviceName() != "app.example.com" {
			t.Fatalf("sites %q, service %q; want %q and app.example.com", h.Sites, h.serviceName(), want)
		}
	})
}

// scHandlerRef is one sms_stepup handler found in an adapted config.
type scHandlerRef struct {
	index int
	raw   json.RawMessage
}

func (r scHandlerRef) label() string { return "sms_stepup handler #" + strconv.Itoa(r.index) }

// findHandlers lists the sms_stepup handlers of an adapted config's http
// servers (by server name, routes in order, subroutes depth first).
func findHandlers(cfgJSON []byte) ([]scHandlerRef, error) {
	type route struct {
		Handle []json.RawMessage `json:"handle"`
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []route `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, err
	}
	var refs []scHandlerRef
	var walk func([]route) error
	walk = func(routes []route) error {
		for _, rt := range routes {
			for _, raw := range rt.Handle {
				var head struct {
					Handler string  `json:"handler"`
					Routes  []route `json:"routes"`
				}
				if err := json.Unmarshal(raw, &head); err != nil {
					return err
				}
				switch head.Handler {
				case "subroute":
					if err := walk(head.Routes); err != nil {
						return err
					}
				case "sms_stepup":
					// The module's own config, without the key that names it.
					var fields map[string]json.RawMessage
					if err := json.Unmarshal(raw, &fields); err != nil {
						return err
					}
					delete(fields, "handler")
					own, err := json.Marshal(fields)
					if err != nil {
						return err
					}
					refs = append(refs, scHandlerRef{index: len(refs), raw: own})
				}
			}
		}
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Apps.HTTP.Servers)) {
		if err := walk(cfg.Apps.HTTP.Servers[name].Routes); err != nil {
			return nil, err
		}
	}
	if len(refs) == 0 {
		return nil, errors.New("no sms_stepup handler in the config")
	}
	return refs, nil
}

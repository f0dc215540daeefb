package caddymodule

import (
	"context"
	dbsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to fill the test database
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/ldaptest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/pgtest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/sourcetest"
)

// The people every source of these tests holds: sourcetest's, and bob,
// whose number in the application's data is a VoIP (050) one.
var srcBob = sourcetest.Person{Identity: "bob", Phone: "050-1234-5678"}

func srcPeople() []sourcetest.Person {
	return append(append([]sourcetest.Person{}, sourcetest.People...), srcBob)
}

// srcTimeout bounds each lookup of these tests; srcSlack is what a loaded
// machine may add to it.
const (
	srcTimeout = "300ms"
	srcSlack   = 3 * time.Second
)

// srcModule is the JSON of one phone_source module.
func srcModule(typ string, fields map[string]any) json.RawMessage {
	fields["type"] = typ
	raw, _ := json.Marshal(fields)
	return raw
}

// srcFill creates the users table in a database and fills it.
func srcFill(t *testing.T, driver, dsn, placeholders string) {
	t.Helper()
	db, err := dbsql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE users (login VARCHAR(1100) NOT NULL, mobile VARCHAR(40))"); err != nil {
		t.Fatal(err)
	}
	for _, p := range srcPeople() {
		if _, err := db.ExecContext(t.Context(), "INSERT INTO users (login, mobile) VALUES "+placeholders, p.Identity, p.Phone); err != nil {
			t.Fatal(err)
		}
	}
}

// srcAPI is the application's JSON API: GET /users/<identity> answers
// {"phone": ...} or 404, reading the identity as a naive server would (the
// path segment, decoded once). calls counts the requests.
func srcAPI(t *testing.T) (base string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	phones := map[string]string{}
	for _, p := range srcPeople() {
		phones[p.Identity] = p.Phone
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/users/"))
		phone, ok := phones[id]
		if err != nil || !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"phone": phone})
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// srcEnv is a handler whose numbers come from sources alone (no phone, no
// phone_file), with its log observed.
type srcEnv struct {
	*htEnv
	logs *observer.ObservedLogs
}

func newSrcEnv(t *testing.T, enroll bool, sources ...json.RawMessage) *srcEnv {
	t.Helper()
	e := htNew(t, nil, func(h *Handler) {
		h.Phone = ""
		h.Enroll = enroll
		h.PhoneSourcesRaw = sources
	})
	return &srcEnv{htEnv: e, logs: htObserve(e)}
}

// masks are the masked forms of everyone's number as a page may show
// them: plain, and with the non-breaking hyphens and spaces of the prose.
// A number the policy can't even parse has no mask: no page shows it.
func (e *srcEnv) masks() []string {
	var out []string
	for _, p := range srcPeople() {
		if m := e.h.maskedInput(p.Phone); m != "" {
			out = append(out, m, unbreakable.Replace(m))
		}
	}
	return out
}

// csrfFor gives b a CSRF token without opening the step-up page, which
// refuses an identity without a number.
func (b *htBrowser) csrfFor() string {
	r := b.request(http.MethodGet, "/_stepup/", nil)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	w := httptest.NewRecorder()
	token := b.e.h.csrfToken(b.e.h.newVisit(w, r, repl, b.user))
	b.jar.SetCookies(htBase, w.Result().Cookies())
	b.keepCSRF(token)
	return token
}

// wantRefused asks for the page and a code as user and expects neither to
// work: the status given (0: 403 or 503), no SMS, and no one's number on
// the page. It returns how long the page took.
func (e *srcEnv) wantRefused(t *testing.T, user string, status int) time.Duration {
	t.Helper()
	b := e.browser(user)
	before := len(e.messages())
	start := time.Now()
	w, body := b.get("/_stepup/?r=%2Fsettings")
	took := time.Since(start)
	b.csrfFor()
	ws, sendBody := b.postSend()
	for _, got := range []struct {
		what string
		code int
		body string
	}{{"the page", w.Code, body}, {"a send", ws.Code, sendBody}} {
		switch {
		case status != 0 && got.code != status:
			t.Errorf("%s: status %d, want %d:\n%s", got.what, got.code, status, got.body)
		case status == 0 && got.code != http.StatusForbidden && got.code != http.StatusServiceUnavailable:
			t.Errorf("%s: status %d, want 403 or 503:\n%s", got.what, got.code, got.body)
		}
		for _, m := range e.masks() {
			if strings.Contains(got.body, m) {
				t.Errorf("%s shows %q", got.what, m)
			}
		}
	}
	if n := len(e.messages()); n != before {
		t.Errorf("%d SMS sent, want none: %v", n-before, e.messages()[before:])
	}
	return took
}

// logText is every entry of the log, message and fields, as one string.
func (e *srcEnv) logText() string {
	var b strings.Builder
	for _, entry := range e.logs.All() {
		fmt.Fprintf(&b, "%s %v\n", entry.Message, entry.ContextMap())
	}
	return b.String()
}

// TestSecurityRule31_OutsideLookupsNeverSpliceAndFailClosed: numbers from
// the application's SQLite file, PostgreSQL, OpenLDAP and JSON API, through
// the handler. Hostile identities find no one; a source that is stopped or
// hangs gives the 503 within its time-out, sends nothing and never falls
// through to a later source or to enrolment; a VoIP number from a source
// is refused by the policy; the log names the source and holds no number;
// answers come from the cache until their lifetime ends.
func TestSecurityRule31_OutsideLookupsNeverSpliceAndFailClosed(t *testing.T) {
	dir := t.TempDir()
	sqlite := filepath.Join(dir, "app.db")
	srcFill(t, "sqlite", sqlite, "(?, ?)")
	pg := pgtest.Start(t)
	srcFill(t, "pgx", pg.DSN, "($1, $2)")
	var people []ldaptest.Person
	for _, p := range srcPeople() {
		people = append(people, ldaptest.Person{UID: p.Identity, Attrs: map[string][]string{"mobile": {p.Phone}}})
	}
	directory := ldaptest.Start(t, people...)
	api, apiCalls := srcAPI(t)

	sqliteSource := srcModule("sql", map[string]any{"name": "app-db", "driver": "sqlite", "dsn": sqlite,
		"query": "SELECT mobile FROM users WHERE login = ?", "timeout": srcTimeout})
	pgSource := srcModule("sql", map[string]any{"name": "app-pg", "driver": "postgres", "dsn": pg.DSN,
		"query": "SELECT mobile FROM users WHERE login = $1", "timeout": srcTimeout})
	ldapSource := srcModule("ldap", map[string]any{"name": "directory", "url": directory.URL, "start_tls": true, "ca_file": directory.CAFile,
		"bind_dn": ldaptest.BindDN, "bind_password": ldaptest.BindPassword, "base_dn": ldaptest.PeopleDN,
		"filter": "(uid={identity})", "timeout": srcTimeout})
	httpSource := srcModule("http", map[string]any{"name": "app-api", "url": api + "/users/{identity}", "field": "phone", "timeout": srcTimeout})
	kinds := []struct {
		in, name string
		raw      json.RawMessage
	}{
		{"in an SQLite file", "app-db", sqliteSource},
		{"in PostgreSQL", "app-pg", pgSource},
		{"in OpenLDAP", "directory", ldapSource},
		{"through an HTTP API", "app-api", httpSource},
	}

	for _, k := range kinds {
		t.Run("a number "+k.in+" steps its user up and the log names the source, never the number", func(t *testing.T) {
			e := newSrcEnv(t, false, k.raw)
			b := e.browser("alice")
			b.stepUp()
			b.wantPass("after a step-up on the number " + k.in)
			if msgs := e.messages(); len(msgs) != 1 || msgs[0].To != htNumber {
				t.Fatalf("SMS %v, want one to alice's %s", msgs, htNumber)
			}
			found := htEvents(e.logs, "phone_source_lookup")
			if len(found) == 0 || found[0].ContextMap()["source"] != k.name || found[0].ContextMap()["result"] != "found" {
				t.Errorf("lookup events %v, want the first found by %s", found, k.name)
			}
			sourcetest.NoNumberIn(t, errors.New(e.logText()))
		})
	}

	for _, k := range kinds {
		e := newSrcEnv(t, false, k.raw)
		for _, h := range sourcetest.HostileIdentities() {
			if h.Identity == "" {
				continue // never looked up: the handler refuses a request without identity first (rule 29)
			}
			t.Run(k.in+", "+h.Name+" finds no one", func(t *testing.T) {
				e.wantRefused(t, h.Identity, 0)
			})
		}
		t.Run(k.in+", hostile identities leave no number in the log", func(t *testing.T) {
			sourcetest.NoNumberIn(t, errors.New(e.logText()))
		})
	}

	for _, k := range kinds {
		t.Run("a VoIP number "+k.in+" is refused by the policy, naming the source", func(t *testing.T) {
			e := newSrcEnv(t, true, k.raw)
			e.wantRefused(t, "bob", http.StatusForbidden)
			refusals := htEvents(e.logs, "policy_refusal")
			if len(refusals) == 0 {
				t.Fatal("no policy_refusal event")
			}
			for _, r := range refusals {
				if f := r.ContextMap(); f["source"] != k.name || f["reason"] != "type" || f["type"] != "voip" {
					t.Errorf("policy_refusal %v, want source %s, reason type, type voip", f, k.name)
				}
			}
			b := e.browser("bob")
			w, body := b.do(http.MethodPost, "/_stepup/enroll", url.Values{"csrf": {b.csrfFor()}, "r": {"/settings"}, "phone": {"+819011112222"}})
			if w.Code != http.StatusForbidden || b.cookie("__Host-stepup_enroll") != "" {
				t.Errorf("enrolling over the source's number: status %d, want 403 and no enrolment:\n%s", w.Code, body)
			}
			sourcetest.NoNumberIn(t, errors.New(e.logText()), srcBob.Phone)
		})
	}

	t.Run("answers come from the cache until their lifetime ends", func(t *testing.T) {
		e := newSrcEnv(t, false, httpSource) // the cache's defaults: found 5m, not found 1m
		cachedBefore := testutil.ToFloat64(metrics.sourceLookups.WithLabelValues("app-api", "cached"))
		calls := func() int64 { return apiCalls.Load() }
		start := calls()
		alice := e.browser("alice")
		for range 3 {
			if w, body := alice.get("/_stepup/?r=%2Fsettings"); w.Code != http.StatusOK {
				t.Fatalf("page: %d\n%s", w.Code, body)
			}
		}
		if n := calls() - start; n != 1 {
			t.Errorf("three pages for alice asked the API %d times, want once", n)
		}
		if d := testutil.ToFloat64(metrics.sourceLookups.WithLabelValues("app-api", "cached")) - cachedBefore; d != 2 {
			t.Errorf("cached lookups counted %v, want 2", d)
		}
		carol := e.browser("carol")
		start = calls()
		e.wantRefused(t, "carol", http.StatusForbidden)
		carol.get("/_stepup/?r=%2Fsettings")
		if n := calls() - start; n != 1 {
			t.Errorf("carol, whom no source knows, asked the API %d times within a minute, want once", n)
		}
		e.clock.Add(time.Minute + time.Second)
		carol.get("/_stepup/?r=%2Fsettings")
		if n := calls() - start; n != 2 {
			t.Errorf("after the not-found lifetime the API was asked %d times in all, want twice", n)
		}
		alice.get("/_stepup/?r=%2Fsettings")
		if n := calls() - start; n != 2 {
			t.Errorf("alice's number, 61s old, was asked for again (%d calls), want it cached for 5m", n-1)
		}
		e.clock.Add(4 * time.Minute)
		alice.get("/_stepup/?r=%2Fsettings")
		if n := calls() - start; n != 3 {
			t.Errorf("after the found lifetime alice's number was not asked for again (%d calls)", n)
		}
	})

	t.Run("a hanging source fails closed within its time-out, and never falls through to a later source or to enrolment", func(t *testing.T) {
		silent := sourcetest.Silent(t)
		hanging := []struct {
			what string
			raw  json.RawMessage
		}{
			{"an HTTP API", srcModule("http", map[string]any{"name": "slow-api", "url": "http://" + silent + "/users/{identity}", "field": "phone", "timeout": srcTimeout})},
			{"PostgreSQL", srcModule("sql", map[string]any{"name": "slow-pg", "driver": "postgres", "dsn": "postgres://postgres@" + silent + "/postgres?sslmode=disable",
				"query": "SELECT mobile FROM users WHERE login = $1", "timeout": srcTimeout})},
			{"a directory", srcModule("ldap", map[string]any{"name": "slow-ldap", "url": "ldap://" + silent, "base_dn": ldaptest.PeopleDN,
				"filter": "(uid={identity})", "timeout": srcTimeout})},
		}
		for _, s := range hanging {
			t.Run(s.what, func(t *testing.T) {
				// alice is in the SQLite file after it: never asked.
				e := newSrcEnv(t, true, s.raw, sqliteSource)
				limit, _ := time.ParseDuration(srcTimeout)
				if took := e.wantRefused(t, "alice", http.StatusServiceUnavailable); took > limit+srcSlack {
					t.Errorf("the page took %s, want within %s", took, limit+srcSlack)
				}
				e.wantUnavailableEvent(t, s.raw)
			})
		}
	})

	t.Run("a stopped source fails closed, is reported down, and never falls through", func(t *testing.T) {
		closed := httptest.NewServer(http.NotFoundHandler())
		closedURL := closed.URL
		closed.Close()
		deadAPI := srcModule("http", map[string]any{"name": "dead-api", "url": closedURL + "/users/{identity}", "field": "phone", "timeout": srcTimeout})
		pg.Stop()
		directory.Stop()
		for _, s := range []struct {
			what string
			raw  json.RawMessage
		}{{"PostgreSQL", pgSource}, {"OpenLDAP", ldapSource}, {"an HTTP API", deadAPI}} {
			t.Run(s.what, func(t *testing.T) {
				e := newSrcEnv(t, true, s.raw, sqliteSource)
				e.wantRefused(t, "alice", http.StatusServiceUnavailable)
				e.wantUnavailableEvent(t, s.raw)
				health := e.h.PhoneSourceHealth(context.Background())
				if len(health) != 2 || health[0].Status != "down" || health[0].Error == "" || health[1].Status != "ok" {
					t.Errorf("health %+v, want the stopped source down with its error, the SQLite file ok", health)
				}
			})
		}
	})
}

// wantUnavailableEvent expects the request's failure logged as the
// source's, not the store's.
func (e *srcEnv) wantUnavailableEvent(t *testing.T, raw json.RawMessage) {
	t.Helper()
	var mod struct{ Name string }
	_ = json.Unmarshal(raw, &mod)
	events := htEvents(e.logs, "phone_source_unavailable")
	if len(events) == 0 || events[0].ContextMap()["source"] != mod.Name {
		t.Errorf("phone_source_unavailable events %v, want them to name %s", events, mod.Name)
	}
	if n := len(htEvents(e.logs, "store_unavailable")); n != 0 {
		t.Errorf("%d store_unavailable events: a source's failure is not the store's", n)
	}
	sourcetest.NoNumberIn(t, errors.New(e.logText()))
}

package httpsrc_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/httpsrc"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/sourcetest"
)

const (
	testTimeout = 500 * time.Millisecond
	slack       = 3 * time.Second
	token       = "Bearer t0ken"
)

// app is the application's API as a careless one might be written: it
// strips ";parameters" from the raw path, decodes it and then resolves dot
// segments (so /users/..%2Fadmin would be /admin), and takes the last of
// repeated query parameters. It answers /users/<login> and
// /lookup?login=<login> for everyone in sourcetest.People, and records the
// paths it was asked.
type app struct {
	mu    sync.Mutex
	asked []string
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.asked = append(a.asked, r.URL.RequestURI())
	a.mu.Unlock()
	if r.Header.Get("Authorization") != token {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	segments := strings.Split(r.URL.EscapedPath(), "/")
	for i, s := range segments {
		segments[i], _, _ = strings.Cut(s, ";")
	}
	decoded, err := url.PathUnescape(strings.Join(segments, "/"))
	if err != nil {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	p := path.Clean(decoded)
	var login string
	switch {
	case strings.HasPrefix(p, "/users/"):
		login = strings.TrimPrefix(p, "/users/")
	case p == "/lookup":
		if all := r.URL.Query()["login"]; len(all) > 0 {
			login = all[len(all)-1]
		}
	}
	for _, person := range sourcetest.People {
		if person.Identity == login {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"user": map[string]any{"login": login, "phone": person.Phone}})
			return
		}
	}
	http.Error(w, `{"error":"no such user"}`, http.StatusNotFound)
}

func (a *app) paths() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.asked...)
}

func newSource(t *testing.T, cfg httpsrc.Config) *httpsrc.Source {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "app-api"
	}
	if cfg.Header == nil {
		cfg.Header = http.Header{"Authorization": {token}}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = testTimeout
	}
	s, err := httpsrc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// caFile writes the test server's certificate as the only CA to trust.
func caFile(t *testing.T, srv *httptest.Server) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHTTPSource(t *testing.T) {
	a := &app{}
	plain := httptest.NewServer(a)
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(a)
	t.Cleanup(secure.Close)
	// In the path a '\' is refused (the next subtest): there, only the
	// others are found.
	var inPath []sourcetest.Person
	for _, p := range sourcetest.People {
		if !strings.Contains(p.Identity, `\`) {
			inPath = append(inPath, p)
		}
	}
	for name, cfg := range map[string]httpsrc.Config{
		"the identity in the path":          {URL: plain.URL + "/users/{identity}", Field: "user.phone"},
		"the identity in the query":         {URL: plain.URL + "/lookup?login={identity}&v=1", Field: "user.phone"},
		"over https with the server's CA":   {URL: secure.URL + "/users/{identity}", Field: "user.phone", CAFile: caFile(t, secure)},
		"over https, identity in the query": {URL: secure.URL + "/lookup?login={identity}", Field: "user.phone", CAFile: caFile(t, secure)},
	} {
		t.Run(name, func(t *testing.T) {
			src := newSource(t, cfg)
			people := sourcetest.People
			if !strings.Contains(cfg.URL, "?") {
				people = inPath
			}
			sourcetest.CheckPeople(t, src, people)
			sourcetest.CheckHostile(t, src)
		})
	}
	t.Run("identities that could leave the path are refused before any request", func(t *testing.T) {
		src := newSource(t, httpsrc.Config{URL: plain.URL + "/users/{identity}", Field: "user.phone"})
		before := len(a.paths())
		for _, id := range []string{"../admin", `..\admin`, "..", ".", "a/b", `CORP\alice`} {
			if raw, found, err := src.Lookup(t.Context(), id); found || !errors.Is(err, source.ErrInvalidIdentity) {
				t.Errorf("%q: %q, %v, %v; want ErrInvalidIdentity", id, raw, found, err)
			}
		}
		if after := a.paths(); len(after) != before {
			t.Errorf("requests were sent: %v", after[before:])
		}
		inQuery := newSource(t, httpsrc.Config{URL: plain.URL + "/lookup?login={identity}", Field: "user.phone"})
		if raw, found, err := inQuery.Lookup(t.Context(), `CORP\alice`); err != nil || found {
			t.Errorf(`CORP\alice in the query: %q, %v, %v; want it asked and not found`, raw, found, err)
		}
	})
	t.Run("the identity is one percent-encoded path segment", func(t *testing.T) {
		src := newSource(t, httpsrc.Config{URL: plain.URL + "/users/{identity}", Field: "user.phone"})
		before := len(a.paths())
		if _, _, err := src.Lookup(t.Context(), "admin;x=1 %2F?#"); err != nil {
			t.Fatal(err)
		}
		if got := a.paths()[before:]; len(got) != 1 || got[0] != "/users/admin%3Bx%3D1%20%252F%3F%23" {
			t.Errorf("asked %v", got)
		}
	})
	t.Run("a certificate the system does not trust fails closed", func(t *testing.T) {
		src := newSource(t, httpsrc.Config{URL: secure.URL + "/users/{identity}", Field: "user.phone"})
		err := sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %v does not say why", err)
		}
	})
	t.Run("a wrong token fails closed", func(t *testing.T) {
		src := newSource(t, httpsrc.Config{URL: plain.URL + "/users/{identity}", Field: "user.phone", Header: http.Header{"Authorization": {"Bearer wrong"}}})
		err := sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
		if !strings.Contains(err.Error(), "status 401") || strings.Contains(err.Error(), "alice") {
			t.Errorf("error %v: want the status, and not the identity", err)
		}
	})
	t.Run("an API that is down fails closed at once", func(t *testing.T) {
		down := httptest.NewServer(a)
		src := newSource(t, httpsrc.Config{URL: down.URL + "/users/{identity}", Field: "user.phone"})
		down.Close()
		err := sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
		if strings.Contains(err.Error(), "alice") {
			t.Errorf("the error repeats the URL with the identity: %v", err)
		}
	})
}

// TestHTTPSourceReadsOnlyOneNumber serves each answer on its own path.
func TestHTTPSourceReadsOnlyOneNumber(t *testing.T) {
	var redirected sync.Mutex
	followed := false
	answers := map[string]struct {
		status int
		body   string
	}{
		"list":     {200, `{"phones":[{"number":"+81 90-1234-5678"}]}`},
		"null":     {200, `{"phone":null}`},
		"missing":  {200, `{"name":"alice"}`},
		"blank":    {200, `{"phone":"  "}`},
		"number":   {200, `{"phone":819012345678}`},
		"several":  {200, `{"phone":["+81 90-1111-1111","+81 90-1111-2222"]}`},
		"object":   {200, `{"phone":{"mobile":"+81 90-1111-1111"}}`},
		"string":   {200, `"+81 90-1111-1111"`},
		"html":     {200, `<html>+81 90-1111-1111</html>`},
		"two":      {200, `{"phone":"+81 90-1111-1111"}{"phone":"+81 90-1111-2222"}`},
		"huge":     {200, `{"phone":"+81 90-1111-1111","pad":"` + strings.Repeat("x", httpsrc.MaxBody) + `"}`},
		"error":    {500, `{"phone":"+81 90-1111-1111"}`},
		"redirect": {302, ""},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/users/admin" {
			redirected.Lock()
			followed = true
			redirected.Unlock()
		}
		a, ok := answers[strings.TrimPrefix(r.URL.Path, "/users/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if a.status == 302 {
			http.Redirect(w, r, "/users/admin", http.StatusFound)
			return
		}
		w.WriteHeader(a.status)
		w.Write([]byte(a.body))
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, identity, field string
		want                  string
		wantErr               error
	}{
		{"a list index in the field", "list", "phones.0.number", "+81 90-1234-5678", nil},
		{"a list index past its end is no number", "list", "phones.1.number", "", nil},
		{"a null is no number", "null", "phone", "", nil},
		{"a missing field is no number", "missing", "phone", "", nil},
		{"a missing object on the way is no number", "missing", "contact.phone", "", nil},
		{"a blank string is no number", "blank", "phone", "", nil},
		{"a 404 is no number", "nobody", "phone", "", nil},
		{"a JSON number fails closed", "number", "phone", "", source.ErrBadAnswer},
		{"several numbers fail closed", "several", "phone", "", source.ErrBadAnswer},
		{"an object fails closed", "object", "phone", "", source.ErrBadAnswer},
		{"a string where an object was expected fails closed", "string", "phone", "", source.ErrBadAnswer},
		{"a word where a list index was expected fails closed", "list", "phones.first.number", "", source.ErrBadAnswer},
		{"an answer that is not JSON fails closed", "html", "phone", "", source.ErrBadAnswer},
		{"two JSON values fail closed", "two", "phone", "", source.ErrBadAnswer},
		{"an answer over 64 KiB fails closed", "huge", "phone", "", source.ErrBadAnswer},
		{"a server error fails closed", "error", "phone", "", source.ErrUnavailable},
		{"a redirect is not followed and fails closed", "redirect", "phone", "", source.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource(t, httpsrc.Config{URL: srv.URL + "/users/{identity}", Field: tc.field})
			raw, found, err := src.Lookup(t.Context(), tc.identity)
			if raw != tc.want || found != (tc.want != "") || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Lookup = %q, %v, %v; want %q and %v", raw, found, err, tc.want, tc.wantErr)
			}
			sourcetest.NoNumberIn(t, err, "+81 90-1111-1111", "+81 90-1111-2222", "819012345678")
			if err != nil {
				t.Logf("failed closed: %v", err)
			}
		})
	}
	redirected.Lock()
	defer redirected.Unlock()
	if followed {
		t.Error("the redirect was followed")
	}
}

func TestHTTPSourceFailsWithinItsTimeout(t *testing.T) {
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	slowBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"phone":"+81 90-`))
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slowBody.Close)
	for name, url := range map[string]string{
		"a server that never answers":           "http://" + sourcetest.Silent(t) + "/users/{identity}",
		"a server that stops half way the body": slowBody.URL + "/users/{identity}",
		"a server that answers garbage":         "http://" + sourcetest.Garbage(t, []byte("\x00\x01garbage +81 90-1234-5678\r\n\r\n")) + "/users/{identity}",
		"a TLS server that never answers":       "https://" + sourcetest.Silent(t) + "/users/{identity}",
	} {
		t.Run(name, func(t *testing.T) {
			src := newSource(t, httpsrc.Config{URL: url, Field: "phone"})
			sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := httpsrc.Config{URL: "https://app.internal/users/{identity}", Field: "phone"}
	cases := []struct {
		name   string
		change func(*httpsrc.Config)
		want   string
	}{
		{"a URL without the identity", func(c *httpsrc.Config) { c.URL = "https://app.internal/users/me" }, "expected {identity} in its path or query"},
		{"the identity in the host", func(c *httpsrc.Config) { c.URL = "https://{identity}.app.internal/" }, "not in the scheme or host"},
		{"the identity in the port", func(c *httpsrc.Config) { c.URL = "https://app.internal:{identity}/" }, "expected an http:// or https:// URL"},
		{"a URL that is no http URL", func(c *httpsrc.Config) { c.URL = "ftp://app.internal/{identity}" }, "expected an http:// or https:// URL"},
		{"credentials in the URL", func(c *httpsrc.Config) { c.URL = "https://u:p@app.internal/users/{identity}" }, "give credentials as a header"},
		{"a fragment", func(c *httpsrc.Config) { c.URL = "https://app.internal/users/{identity}#x" }, "a fragment is never sent"},
		{"plain http to another host", func(c *httpsrc.Config) { c.URL = "http://app.internal/users/{identity}" }, "use https://, or allow_plaintext"},
		{"no field", func(c *httpsrc.Config) { c.Field = "" }, "field is required"},
		{"a field with an empty key", func(c *httpsrc.Config) { c.Field = "user..phone" }, "keys joined by single dots"},
		{"a header name with a colon", func(c *httpsrc.Config) { c.Header = http.Header{"X-A:b": {"1"}} }, "not a header name"},
		{"a header value with a line break", func(c *httpsrc.Config) { c.Header = http.Header{"X-Api-Key": {"k\r\nX-Admin: 1"}} }, "may not hold a line break"},
		{"a CA file with plain http", func(c *httpsrc.Config) {
			c.URL, c.CAFile = "http://127.0.0.1/users/{identity}", "/etc/ssl/certs/ca-certificates.crt"
		}, "only used with https://"},
		{"a CA file that is missing", func(c *httpsrc.Config) { c.CAFile = "/nonexistent/ca.pem" }, "ca_file"},
		{"a time-out of a minute", func(c *httpsrc.Config) { c.Timeout = time.Minute }, "expected a duration from 1ms to 30s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			if _, err := httpsrc.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
	for name, u := range map[string]string{
		"plain http on loopback":        "http://127.0.0.1:8080/users/{identity}",
		"plain http to localhost":       "http://localhost/users/{identity}",
		"the identity in the query":     "https://app.internal/lookup?login={identity}&tenant=1",
		"the identity in a longer path": "https://app.internal/users/{identity}/contact.json",
	} {
		if _, err := httpsrc.New(httpsrc.Config{URL: u, Field: "phone"}); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestParseAppAsk(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header []string
		want   appAsk
	}{
		{[]string{`Bearer error="insufficient_user_authentication"`}, appAsk{stepUp: true}},
		{[]string{`bearer ERROR="insufficient_user_authentication"`}, appAsk{stepUp: true}},
		{[]string{`BEARER realm="x, y", error="insufficient_user_authentication", max_age="60"`}, appAsk{true, time.Minute, true}},
		{[]string{`Bearer error=insufficient_user_authentication, max_age=300`}, appAsk{true, 5 * time.Minute, true}},
		{[]string{`Basic realm="app", Bearer error="insufficient_user_authentication", max_age=0`}, appAsk{true, 0, true}},
		{[]string{`Basic realm="app"`, `Bearer error="insufficient_user_authentication", error_description="more"`}, appAsk{stepUp: true}},
		{[]string{`Bearer realm="a\"b", error="insufficient_user_authentication"`}, appAsk{stepUp: true}},
		{[]string{`Bearer abc==, Bearer error="insufficient_user_authentication"`}, appAsk{stepUp: true}},
		{[]string{`Bearer abc=, Bearer error="insufficient_user_authentication", max_age=5`}, appAsk{true, 5 * time.Second, true}},
		// max_age that are ignored: the handler's applies.
		{[]string{`Bearer error="insufficient_user_authentication", max_age=-5`}, appAsk{stepUp: true}},
		{[]string{`Bearer error="insufficient_user_authentication", max_age=abc`}, appAsk{stepUp: true}},
		{[]string{`Bearer error="insufficient_user_authentication", max_age="1.5"`}, appAsk{stepUp: true}},
		{[]string{`Bearer error="insufficient_user_authentication", max_age=99999999999999999999`}, appAsk{stepUp: true}},
		{[]string{`Bearer error="insufficient_user_authentication", max_age=31708800`}, appAsk{stepUp: true}},
		// Not an ask for a step-up.
		{nil, appAsk{}},
		{[]string{`Bearer`}, appAsk{}},
		{[]string{`Bearer error="invalid_token"`}, appAsk{}},
		{[]string{`Basic error="insufficient_user_authentication"`}, appAsk{}},
		{[]string{`Bearer realm="error=insufficient_user_authentication"`}, appAsk{}},
		{[]string{`Bearer error="insufficient_user_authentication`}, appAsk{}},
		{[]string{`Negotiate, Bearer error="Insufficient_User_Authentication"`}, appAsk{}},
	} {
		if got := parseAppAsk(tc.header); got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.header, got, tc.want)
		}
	}
}

// atApp is an application behind app_triggered: /app/* asks for a step-up
// (with max_age as given) unless X-Stepup-Auth-Time is at or after what it
// requires, and records every request that it served with 200.
type atApp struct {
	mu       sync.Mutex
	maxAge   string // "" for none
	always   bool   // ask whatever the request carries
	plain401 bool   // a 401 that asks for no step-up
	clock    *htClock
	asked    time.Time
	served   []string
}

func (a *atApp) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	if a.plain401 {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, err := io.WriteString(w, "app's own 401")
		return err
	}
	authTime, err := strconv.ParseInt(r.Header.Get("X-Stepup-Auth-Time"), 10, 64)
	fresh := err == nil && !a.asked.IsZero() && authTime >= a.asked.Unix()
	if a.always || !fresh {
		a.asked = a.clock.Now()
		v := `Bearer error="insufficient_user_authentication"`
		if a.maxAge != "" {
			v += ", max_age=" + a.maxAge
		}
		w.Header().Set("WWW-Authenticate", v)
		w.Header().Set("X-App", "asked")
		w.WriteHeader(http.StatusUnauthorized)
		_, err := io.WriteString(w, "app wants a step-up")
		return err
	}
	a.served = append(a.served, r.Method+" "+r.URL.RequestURI()+" "+string(body))
	_, err = io.WriteString(w, "app done")
	return err
}

func atNew(t *testing.T, app *atApp) *htEnv {
	e := htNew(t, nil, func(h *Handler) {
		h.UpstreamHeaders = []string{"auth_time"}
		h.AppTriggeredRaw = caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/app/*"]`)}}
	})
	app.clock = e.clock
	return e
}

func atDo(b *htBrowser, app *atApp, method, target, form string, extra ...string) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	r := b.request(method, target, nil, extra...)
	if body != nil {
		r.Body, r.ContentLength = io.NopCloser(body), int64(len(form))
		r.Header.Set("Content-Type", formType)
		r.Header.Set("Origin", "https://example.com")
	}
	w := httptest.NewRecorder()
	if err := b.e.h.ServeHTTP(w, r, app); err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	b.jar.SetCookies(htBase, w.Result().Cookies())
	return w, w.Body.String()
}

// TestAppTriggeredGetStepsUpAndComesBack: the application's ask on a GET
// of a route nothing protects sends the browser to the step-up page and
// back; after it the application sees the fresh auth time and answers.
func TestAppTriggeredGetStepsUpAndComesBack(t *testing.T) {
	t.Parallel()
	app := &atApp{maxAge: "0"}
	e := atNew(t, app)
	b := e.browser("alice")
	w, body := atDo(b, app, http.MethodGet, "/app/transfer?to=bob", "")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/_stepup/?r=%2Fapp%2Ftransfer%3Fto%3Dbob" ||
		w.Header().Get("X-App") != "" || strings.Contains(body, "app wants") {
		t.Fatalf("the app's ask: %d, Location %q, X-App %q:\n%s", w.Code, w.Header().Get("Location"), w.Header().Get("X-App"), body)
	}
	e.clock.Add(time.Second)
	b.stepUp()
	w, body = atDo(b, app, http.MethodGet, "/app/transfer?to=bob", "")
	if w.Code != http.StatusOK || body != "app done" || len(app.served) != 1 {
		t.Fatalf("after the step-up: %d %q, app served %q", w.Code, body, app.served)
	}
}

// TestAppTriggeredLoopShowsAnErrorAfterOneRetry: an application that asks
// again right after the step-up gets the user an error page, not a second
// step-up.
func TestAppTriggeredLoopShowsAnErrorAfterOneRetry(t *testing.T) {
	t.Parallel()
	app := &atApp{always: true}
	e := atNew(t, app)
	b := e.browser("alice")
	if w, _ := atDo(b, app, http.MethodGet, "/app/x", ""); w.Code != http.StatusSeeOther {
		t.Fatalf("first ask: %d, want 303", w.Code)
	}
	e.clock.Add(time.Second)
	b.stepUp()
	w, body := atDo(b, app, http.MethodGet, "/app/x", "")
	htWant(t, "the ask right after the step-up", w, body, http.StatusForbidden, "still asks for a newer confirmation")
	// Another URL is a new ask.
	if w, _ := atDo(b, app, http.MethodGet, "/app/y", ""); w.Code != http.StatusSeeOther {
		t.Fatalf("ask on another URL: %d, want 303", w.Code)
	}
}

// TestAppTriggeredOther401PassesUntouched: a 401 without the error code
// reaches the client as the application wrote it.
func TestAppTriggeredOther401PassesUntouched(t *testing.T) {
	t.Parallel()
	app := &atApp{plain401: true}
	e := atNew(t, app)
	w, body := atDo(e.browser("alice"), app, http.MethodGet, "/app/x", "")
	if w.Code != http.StatusUnauthorized || body != "app's own 401" || w.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Fatalf("a plain 401: %d %q %q", w.Code, body, w.Header().Get("WWW-Authenticate"))
	}
}

// TestAppTriggeredAPIGetsTheStrictestMaxAge: an API client gets the
// plugin's 401 with the application's max_age when it is stricter than the
// handler's, and the handler's when the application's is looser or absurd.
func TestAppTriggeredAPIGetsTheStrictestMaxAge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		appMaxAge string
		want      float64
	}{{"60", 60}, {"0", 0}, {"99999", 900}, {"-5", 900}, {"abc", 900}, {"1e9", 900}, {"", 900}} {
		app := &atApp{maxAge: tc.appMaxAge}
		e := atNew(t, app)
		w, body := atDo(e.browser("alice"), app, http.MethodGet, "/app/x", "", "Accept: application/json")
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil || w.Code != http.StatusUnauthorized ||
			got["max_age"] != tc.want || got["verify_url"] != "/_stepup/api/verify" {
			t.Errorf("app max_age %q: %d %s; want 401 with max_age %v", tc.appMaxAge, w.Code, body, tc.want)
		}
	}
}

// TestAppTriggeredFormIsKeptAndSentOnce: a form POST the application asks
// a step-up for is kept, and after the step-up reaches it once, as sent.
func TestAppTriggeredFormIsKeptAndSentOnce(t *testing.T) {
	t.Parallel()
	app := &atApp{}
	e := atNew(t, app)
	b := e.browser("alice")
	w, _ := atDo(b, app, http.MethodPost, "/app/transfer", rpForm)
	if w.Code != http.StatusSeeOther || !strings.HasSuffix(w.Header().Get("Location"), "&n=kept") {
		t.Fatalf("the app's ask on a form: %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	e.clock.Add(time.Second)
	action, body := rpStepUpAndResume(b)
	w, page := atDo(b, app, http.MethodPost, action, body)
	if w.Code != http.StatusOK || page != "app done" || len(app.served) != 1 || app.served[0] != "POST /app/transfer "+rpForm {
		t.Fatalf("resubmission: %d %q; app served %q", w.Code, page, app.served)
	}
	w, _ = atDo(b, app, http.MethodPost, action, body)
	if w.Code != http.StatusConflict || len(app.served) != 1 {
		t.Fatalf("second resubmission: %d; app served %q", w.Code, app.served)
	}
}

// TestAppTriggeredStreamsOtherAnswers: an answer that is not an ask
// reaches the client as it is written, flushes included.
func TestAppTriggeredStreamsOtherAnswers(t *testing.T) {
	t.Parallel()
	e := atNew(t, &atApp{})
	b := e.browser("alice")
	r := b.request(http.MethodGet, "/app/events", nil)
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "data: 1\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			return err
		}
		_, err := io.WriteString(w, "data: 2\n\n")
		return err
	})
	if err := e.h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusOK || !w.Flushed || w.Body.String() != "data: 1\n\ndata: 2\n\n" || w.Header().Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d, flushed %v, %q", w.Code, w.Flushed, w.Body.String())
	}
}

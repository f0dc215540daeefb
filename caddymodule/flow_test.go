package caddymodule

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/console"
)

// These tests drive a provisioned Handler with httptest and a fake clock, so
// they can move time past code, token, cooldown and lock-out limits without
// sleeping. Requests are HTTPS to example.com, so the cookies carry the
// __Host- prefix and Secure, as in production.

const (
	htNumber = "+819012345678"
	htKey    = "flow-test-signing-key-0123456789abcdefghij"
)

var htBase = &url.URL{Scheme: "https", Host: "example.com", Path: "/"}

// htClock is a fake otp.Clock that only moves when told.
type htClock struct {
	mu  sync.Mutex
	now time.Time
}

func htNewClock() *htClock {
	// Start at the real time: the memory store's sweeper runs on the real
	// clock, and must never find fake-time entries already expired.
	return &htClock{now: time.Now().Truncate(time.Second)}
}

func (c *htClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *htClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *htClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// htStore wraps the handler's store to count calls and to fail on demand,
// as a store that cannot be reached would. notBeforeDown fails only the
// revocation reads.
type htStore struct {
	otp.Store
	// The fraud guard's counts, kept by the store inside, uncounted.
	otp.BreakerStore
	// breakerDown fails the fraud guard's reads (risk_watch_test.go).
	breakerDown   atomic.Bool
	calls         atomic.Int64
	notBefores    atomic.Int64
	down          atomic.Bool
	notBeforeDown atomic.Bool
}

var htErrDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (s *htStore) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return nil, htErrDown
	}
	return s.Store.Issue(ctx, req)
}

// IssueGuarded is the send when the fraud guard is on (its default): the
// same store step as Issue, so it counts and fails as Issue does.
func (s *htStore) IssueGuarded(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return otp.IssueResult{}, htErrDown
	}
	return s.BreakerStore.IssueGuarded(ctx, req)
}

func (s *htStore) Challenge(ctx context.Context, subject, id string, now time.Time) (*otp.Challenge, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return nil, htErrDown
	}
	return s.Store.Challenge(ctx, subject, id, now)
}

func (s *htStore) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return otp.VerifyResult{}, htErrDown
	}
	return s.Store.Verify(ctx, req)
}

func (s *htStore) Identity(ctx context.Context, subject string, now time.Time) (otp.IdentityState, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return otp.IdentityState{}, htErrDown
	}
	return s.Store.Identity(ctx, subject, now)
}

func (s *htStore) NotBefore(ctx context.Context, subject string) (time.Time, error) {
	s.calls.Add(1)
	s.notBefores.Add(1)
	if s.down.Load() || s.notBeforeDown.Load() {
		return time.Time{}, htErrDown
	}
	return s.Store.NotBefore(ctx, subject)
}

// htEnv is one provisioned handler, its clock, outbox and store wrapper.
type htEnv struct {
	t      testing.TB
	h      *Handler
	clock  *htClock
	outbox string
	store  *htStore
	next   atomic.Int64
	// registry is the config's metrics registry, as /metrics serves it.
	registry *prometheus.Registry
}

var htSeq atomic.Int64

// htNew provisions a handler protecting /settings* with identity
// {http.auth.user.id}, a fixed phone number, a memory store of its own and
// the console gateway writing to an outbox. configure may change the
// handler before Provision.
func htNew(t testing.TB, clock *htClock, configure func(*Handler)) *htEnv {
	t.Helper()
	if clock == nil {
		clock = htNewClock()
	}
	outbox := filepath.Join(t.TempDir(), "outbox.jsonl")
	store, _ := json.Marshal(map[string]string{"type": "memory", "name": fmt.Sprintf("flow-%d-%d", os.Getpid(), htSeq.Add(1))})
	gateway, _ := json.Marshal(map[string]string{"type": "console", "outbox": outbox})
	h := &Handler{
		ProtectRaw:      caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/settings*"]`)}},
		IdentityOptions: IdentityOptions{Identity: "{http.auth.user.id}", Phone: htNumber},
		TokenOptions:    TokenOptions{SigningKey: htKey},
		StoreRaw:        store,
		GatewayRaw:      gateway,
		clock:           clock,
	}
	// Exact waits, so a test can step the clock past a cooldown; the
	// jitter, on by default, has its own tests (backoff_test.go).
	noJitter := 0.0
	h.ResendBackoff = &ResendBackoff{Jitter: &noJitter}
	if configure != nil {
		configure(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if _, ok := t.(*testing.B); ok {
		// Without a config, Caddy gives modules a development logger on
		// stderr; keep the gateway's start-up warning out of benchmark
		// results. Benchmarks run after all tests, so nothing else writes.
		devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		stderr := os.Stderr
		os.Stderr = devNull
		defer func() { os.Stderr = stderr; devNull.Close() }()
	}
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if _, ok := t.(*testing.B); ok {
		h.logger = zap.NewNop()
	} else {
		h.logger = zaptest.NewLogger(t)
	}
	// Put the counting wrapper between the service and the store.
	e := &htEnv{t: t, h: h, clock: clock, outbox: outbox, store: &htStore{Store: h.store}, registry: ctx.GetMetricsRegistry()}
	if b, ok := h.store.(otp.BreakerStore); ok {
		e.store.BreakerStore = b
	}
	svc, err := otp.NewService(h.service.Config(), e.store, console.New(nil, outbox, clock), h.keys, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.service, h.store = svc, e.store
	return e
}

// htBrowser is one user with a cookie jar.
type htBrowser struct {
	e     *htEnv
	t     testing.TB
	user  string
	jar   *cookiejar.Jar
	token string // the CSRF token, once a page gave it
	// tokenAt is when (on the fake clock) the page gave it.
	tokenAt time.Time
}

func (e *htEnv) browser(user string) *htBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &htBrowser{e: e, t: e.t, user: user, jar: jar}
}

// request builds a request as Caddy would hand it to the handler: with a
// replacer holding the identity, and the vars holding the client IP and
// that the peer is a trusted proxy (which only handlers with
// headers_set_by trusted_proxy look at).
func (b *htBrowser) request(method, target string, form url.Values, extra ...string) *http.Request {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://example.com"+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range extra {
		k, v, _ := strings.Cut(h, ":")
		r.Header.Set(k, strings.TrimSpace(v))
	}
	for _, c := range b.jar.Cookies(htBase) {
		r.AddCookie(c)
	}
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.10", caddyhttp.TrustedProxyVarKey: true}))
	repl := caddyhttp.NewTestReplacer(r)
	if b.user != "" {
		repl.Set("http.auth.user.id", b.user)
	}
	return r
}

// do serves one request; the next handler answers 200 "next".
func (b *htBrowser) do(method, target string, form url.Values, extra ...string) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	r := b.request(method, target, form, extra...)
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		b.e.next.Add(1)
		_, err := io.WriteString(w, "next")
		return err
	})
	if err := b.e.h.ServeHTTP(w, r, next); err != nil {
		b.t.Fatalf("%s %s: handler error: %v", method, target, err)
	}
	b.jar.SetCookies(htBase, w.Result().Cookies())
	return w, w.Body.String()
}

func (b *htBrowser) get(target string, extra ...string) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	return b.do(http.MethodGet, target, nil, extra...)
}

func (b *htBrowser) cookie(name string) string {
	for _, c := range b.jar.Cookies(htBase) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *htBrowser) setCookie(name, value string) {
	b.jar.SetCookies(htBase, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true}})
}

var htFieldRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// csrf returns the CSRF token of the step-up page, opening the page the
// first time. A token lives an hour (otp.CSRFLifetime): once the fake clock
// has moved half that since, the browser gets a new one for the nonce
// cookie it holds, as a reload of the page would give it (the page itself
// may answer 429 by then).
func (b *htBrowser) csrf() string {
	b.t.Helper()
	if b.token != "" && b.e.clock.Now().Sub(b.tokenAt) < otp.CSRFLifetime/2 {
		return b.token
	}
	if b.token != "" {
		r := b.request(http.MethodGet, "/_stepup/", nil)
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		b.keepCSRF(b.e.h.csrfToken(b.e.h.newVisit(httptest.NewRecorder(), r, repl, b.user)))
		return b.token
	}
	w, body := b.get("/_stepup/?r=%2Fsettings")
	if w.Code != http.StatusOK {
		b.t.Fatalf("step-up page: status %d:\n%s", w.Code, body)
	}
	for _, m := range htFieldRE.FindAllStringSubmatch(body, -1) {
		if m[1] == "csrf" {
			b.keepCSRF(html.UnescapeString(m[2]))
			return b.token
		}
	}
	b.t.Fatalf("step-up page has no csrf field:\n%s", body)
	return ""
}

// keepCSRF keeps the CSRF token a page gave, and when.
func (b *htBrowser) keepCSRF(token string) {
	b.token, b.tokenAt = token, b.e.clock.Now()
}

// postSend asks for a code (or a new one, when the browser has a
// challenge) without checking the outcome.
func (b *htBrowser) postSend() (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	return b.do(http.MethodPost, "/_stepup/send", url.Values{"csrf": {b.csrf()}, "r": {"/settings"}})
}

// send asks for a code and returns it from the outbox.
func (b *htBrowser) send() string {
	b.t.Helper()
	before := len(b.e.messages())
	w, body := b.postSend()
	if w.Code != http.StatusSeeOther {
		b.t.Fatalf("send: status %d:\n%s", w.Code, body)
	}
	if n := len(b.e.messages()); n != before+1 {
		b.t.Fatalf("send wrote %d messages, want 1", n-before)
	}
	return b.e.lastCode()
}

func (b *htBrowser) verify(code string) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	return b.do(http.MethodPost, "/_stepup/verify", url.Values{"csrf": {b.csrf()}, "r": {"/settings"}, "code": {code}})
}

// stepUp asks for a code and enters it.
func (b *htBrowser) stepUp() {
	b.t.Helper()
	w, body := b.verify(b.send())
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/settings" {
		b.t.Fatalf("verify: status %d, Location %q:\n%s", w.Code, w.Header().Get("Location"), body)
	}
	if b.cookie("__Host-stepup") == "" {
		b.t.Fatal("verify set no step-up cookie")
	}
}

// wantPass asserts that /settings reaches the next handler.
func (b *htBrowser) wantPass(what string) {
	b.t.Helper()
	before := b.e.next.Load()
	w, body := b.get("/settings")
	if w.Code != http.StatusOK || body != "next" || b.e.next.Load() != before+1 {
		b.t.Fatalf("%s: /settings answered %d %q, want to pass to the next handler", what, w.Code, body)
	}
}

// wantStepUp asserts that /settings is sent to the step-up page.
func (b *htBrowser) wantStepUp(what string) {
	b.t.Helper()
	before := b.e.next.Load()
	w, _ := b.get("/settings")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/_stepup/?r=%2Fsettings" || b.e.next.Load() != before {
		b.t.Fatalf("%s: /settings answered %d (Location %q), want a 303 to the step-up page", what, w.Code, w.Header().Get("Location"))
	}
}

func htWant(t testing.TB, what string, w *httptest.ResponseRecorder, body string, status int, text string) {
	t.Helper()
	if w.Code != status || !strings.Contains(body, text) {
		t.Fatalf("%s: status %d, want %d with %q; body:\n%s", what, w.Code, status, text, body)
	}
}

type htMessage struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

func (e *htEnv) messages() []htMessage {
	e.t.Helper()
	f, err := os.Open(e.outbox)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []htMessage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m htMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

var htCodeRE = regexp.MustCompile(`code: (\d{6})\n`)

func (e *htEnv) lastCode() string {
	e.t.Helper()
	msgs := e.messages()
	if len(msgs) == 0 {
		e.t.Fatal("outbox is empty")
	}
	m := msgs[len(msgs)-1]
	sub := htCodeRE.FindStringSubmatch(m.Body)
	if m.To != htNumber || sub == nil {
		e.t.Fatalf("message %+v: want a 6-digit code to %s", m, htNumber)
	}
	return sub[1]
}

func htWrong(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1000000)
}

func htRetryAfter(t testing.TB, w *httptest.ResponseRecorder) time.Duration {
	t.Helper()
	s, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After %q: %v", w.Header().Get("Retry-After"), err)
	}
	return time.Duration(s) * time.Second
}

func TestFlowCodeExpiry(t *testing.T) {
	t.Parallel()

	t.Run("a code entered just before code_ttl works", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := e.browser("alice")
		code := b.send()
		e.clock.Add(5*time.Minute - time.Second)
		w, body := b.verify(code)
		htWant(t, "verify", w, body, http.StatusSeeOther, "")
	})

	t.Run("a code entered after code_ttl is refused as expired", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := e.browser("alice")
		code := b.send()
		e.clock.Add(5*time.Minute + time.Second)
		w, body := b.verify(code)
		htWant(t, "verify after code_ttl", w, body, http.StatusUnprocessableEntity, "This code has expired or was already used")
		if b.cookie("__Host-stepup") != "" {
			t.Fatal("an expired code set a step-up cookie")
		}
		// The page no longer offers the code form.
		_, body = b.get("/_stepup/?r=%2Fsettings")
		if strings.Contains(body, `name="code"`) {
			t.Error("the page still shows the code form for an expired challenge")
		}
	})
}

func TestFlowTokenExpiry(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("alice")
	b.stepUp()
	b.wantPass("right after the step-up")
	e.clock.Add(15*time.Minute - time.Second)
	b.wantPass("just before token_ttl")
	e.clock.Add(2 * time.Second)
	b.wantStepUp("after token_ttl")
}

func TestFlowMaxAge(t *testing.T) {
	t.Parallel()
	clock := htNewClock()
	lenient := htNew(t, clock, nil)
	strict := htNew(t, clock, func(h *Handler) { h.MaxAge = caddy.Duration(5 * time.Minute) })

	b := lenient.browser("alice")
	b.stepUp()
	onStrict := strict.browser("alice")
	onStrict.setCookie("__Host-stepup", b.cookie("__Host-stepup"))

	clock.Add(5*time.Minute - time.Second)
	b.wantPass("lenient route before max_age")
	onStrict.wantPass("strict route before max_age")

	clock.Add(2 * time.Second)
	b.wantPass("lenient route after max_age")
	onStrict.wantStepUp("strict route after max_age")

	w, _ := onStrict.get("/settings", "Accept: application/json")
	if wa := w.Header().Get("WWW-Authenticate"); w.Code != http.StatusUnauthorized || !strings.Contains(wa, `max_age="300"`) {
		t.Fatalf("JSON client on the strict route: %d, WWW-Authenticate %q; want 401 with max_age=\"300\"", w.Code, wa)
	}
}

func TestFlowResend(t *testing.T) {
	t.Parallel()

	t.Run("after the cooldown a new code replaces the old one without resetting attempts", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := e.browser("alice")
		old := b.send()
		for range 2 {
			w, body := b.verify(htWrong(old))
			htWant(t, "wrong code", w, body, http.StatusUnprocessableEntity, "attempts left")
		}
		e.clock.Add(30 * time.Second)
		w, body := b.postSend()
		if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Location"), "m=resent") {
			t.Fatalf("resend: %d %q:\n%s", w.Code, w.Header().Get("Location"), body)
		}
		code := e.lastCode()
		if len(e.messages()) != 2 {
			t.Fatalf("outbox has %d messages, want 2", len(e.messages()))
		}
		if code != old {
			w, body = b.verify(old)
			htWant(t, "the old code after a resend", w, body, http.StatusUnprocessableEntity, "2 attempts left")
		}
		w, body = b.verify(code)
		htWant(t, "the new code", w, body, http.StatusSeeOther, "")
		b.wantPass("after the new code")
	})

	t.Run("two wrong codes before a resend and three after kill the challenge", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := e.browser("alice")
		first := b.send()
		for range 2 {
			b.verify(htWrong(first))
		}
		e.clock.Add(30 * time.Second)
		if w, body := b.postSend(); w.Code != http.StatusSeeOther {
			t.Fatalf("resend: %d:\n%s", w.Code, body)
		}
		code := e.lastCode()
		challenge := b.cookie("__Host-stepup_challenge")
		wrong := htWrong(code)
		for _, left := range []string{"2 attempts left", "1 attempt left"} {
			w, body := b.verify(wrong)
			htWant(t, "wrong code after the resend", w, body, http.StatusUnprocessableEntity, left)
		}
		w, body := b.verify(wrong)
		htWant(t, "fifth wrong code", w, body, http.StatusUnprocessableEntity, "can no longer be used")
		b.setCookie("__Host-stepup_challenge", challenge)
		w, body = b.verify(code)
		htWant(t, "the right code on a dead challenge", w, body, http.StatusUnprocessableEntity, "")
		b.wantStepUp("after a dead challenge")
	})

	t.Run("each resend waits longer than the last", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := e.browser("alice")
		b.send()
		for _, wait := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute} {
			e.clock.Add(wait - time.Second)
			w, body := b.postSend()
			htWant(t, fmt.Sprintf("resend 1s before %s", wait), w, body, http.StatusTooManyRequests, "Please wait 1 seconds")
			if d := htRetryAfter(t, w); d != time.Second {
				t.Errorf("resend 1s before %s: Retry-After %s, want 1s", wait, d)
			}
			e.clock.Add(time.Second)
			w, body = b.postSend()
			if w.Code != http.StatusSeeOther {
				t.Fatalf("resend after %s: %d:\n%s", wait, w.Code, body)
			}
		}
		if n := len(e.messages()); n != 4 {
			t.Fatalf("outbox has %d messages, want 4", n)
		}
	})
}

func TestFlowIdentityLockout(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("alice")

	// Ten wrong codes over two challenges spend the budget.
	code := b.send()
	for range 5 {
		b.verify(htWrong(code))
	}
	e.clock.Add(30 * time.Second)
	code = b.send()
	for _, left := range []string{"4 attempts left", "3 attempts left", "2 attempts left", "1 attempt left"} {
		w, body := b.verify(htWrong(code))
		htWant(t, "wrong code on the second challenge", w, body, http.StatusUnprocessableEntity, left)
	}
	w, body := b.verify(htWrong(code))
	htWant(t, "the tenth wrong code", w, body, http.StatusTooManyRequests, "Too many wrong codes")
	if d := htRetryAfter(t, w); d < 30*time.Second || d > 31*time.Second {
		t.Errorf("Retry-After %s, want about 30s", d)
	}

	sent := len(e.messages())
	w, body = b.postSend()
	htWant(t, "send while locked", w, body, http.StatusTooManyRequests, "Too many wrong codes")
	if w.Header().Get("Retry-After") == "" {
		t.Error("send while locked: no Retry-After")
	}
	if n := len(e.messages()); n != sent {
		t.Fatalf("a send while locked wrote %d messages", n-sent)
	}
	w, body = b.get("/_stepup/?r=%2Fsettings")
	htWant(t, "page while locked", w, body, http.StatusTooManyRequests, "Try again in 1 minutes")

	// Once the lock and the cooldown are over, a new code does not reset
	// the failures: one more wrong code locks again, for longer.
	e.clock.Add(61 * time.Second)
	code = b.send()
	w, body = b.verify(htWrong(code))
	htWant(t, "the eleventh wrong code", w, body, http.StatusTooManyRequests, "Too many wrong codes")
	if d := htRetryAfter(t, w); d < 60*time.Second || d > 61*time.Second {
		t.Errorf("Retry-After %s, want about 60s", d)
	}
}

// TestFlowHotPathMakesNoStoreCall: a valid cookie needs no store, except
// one read of the identity's revocation per revocation_refresh.
func TestFlowHotPathMakesNoStoreCall(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, func(h *Handler) { h.RevocationRefresh = caddy.Duration(30 * time.Second) })
	b := e.browser("alice")
	b.stepUp()
	if e.store.calls.Load() == 0 {
		t.Fatal("the step-up made no store call: the counting store is not in use")
	}
	e.store.calls.Store(0)
	b.wantPass("with a valid cookie, the first time")
	if n, nb := e.store.calls.Load(), e.store.notBefores.Load(); n != 1 || nb != 1 {
		t.Fatalf("the first request with a valid cookie made %d store calls (%d revocation reads), want the one read of the revocation", n, nb)
	}
	e.store.calls.Store(0)
	for range 3 {
		e.clock.Add(9 * time.Second)
		b.wantPass("with a valid cookie, within revocation_refresh")
	}
	if _, body := b.get("/public"); body != "next" {
		t.Fatalf("unprotected route: %q", body)
	}
	if n := e.store.calls.Load(); n != 0 {
		t.Fatalf("requests with a valid cookie within revocation_refresh made %d store calls, want 0", n)
	}
	e.clock.Add(3 * time.Second) // 30 s since the read
	b.wantPass("with a valid cookie, once revocation_refresh is over")
	b.wantPass("with a valid cookie, right after the new read")
	if n := e.store.calls.Load(); n != 1 {
		t.Fatalf("after revocation_refresh two requests made %d store calls, want the one read of the revocation", n)
	}
}

func TestFlowStoreDown(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("alice")
	csrf := b.csrf() // from the page, while the store is up
	e.store.down.Store(true)

	b.setCookie("__Host-stepup_challenge", "some-challenge")
	requests := []struct {
		name   string
		method string
		target string
		form   url.Values
	}{
		{"the step-up page", http.MethodGet, "/_stepup/?r=%2Fsettings", nil},
		{"send", http.MethodPost, "/_stepup/send", url.Values{"csrf": {csrf}, "r": {"/settings"}}},
		{"verify", http.MethodPost, "/_stepup/verify", url.Values{"csrf": {csrf}, "r": {"/settings"}, "code": {"123456"}}},
	}
	for _, r := range requests {
		w, body := b.do(r.method, r.target, r.form)
		htWant(t, r.name+" with the store down", w, body, http.StatusServiceUnavailable, "Temporarily unavailable")
		if w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", r.name)
		}
	}
	w, body := b.get("/_stepup/?r=%2Fsettings", "Accept: application/json")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(body, `"error":"unavailable"`) {
		t.Errorf("JSON client with the store down: %d %q", w.Code, body)
	}
	if n := len(e.messages()); n != 0 {
		t.Fatalf("outbox has %d messages with the store down, want none", n)
	}
	before := e.next.Load()
	w, body = b.get("/settings")
	htWant(t, "a protected page with the store down", w, body, http.StatusServiceUnavailable, "Temporarily unavailable")
	w, body = b.get("/settings", "Accept: application/json")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(body, `"error":"unavailable"`) {
		t.Errorf("JSON client on a protected page with the store down: %d %q", w.Code, body)
	}
	if e.next.Load() != before {
		t.Fatal("a request passed to the next handler with the store down")
	}
	if e.store.calls.Load() == 0 {
		t.Fatal("no store call was made: the failing store is not in use")
	}

	// The store comes back: no restart needed.
	e.store.down.Store(false)
	b.jar.SetCookies(htBase, []*http.Cookie{{Name: "__Host-stepup_challenge", Path: "/", MaxAge: -1}})
	b.stepUp()
	b.wantPass("after the store came back")
}

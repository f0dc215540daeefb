package caddymodule

// One test per rule of SECURITY.md, named TestSecurityRuleNN_<ShortName>,
// each with a subtest per hostile input the rule names. They drive the
// handler as Caddy does (the ht harness of flow_test.go: a provisioned
// handler, a fake clock, real stores, the console outbox), so each asserts
// what a client or an operator would see if the rule broke. docs/
// SECURITY-TESTS.md maps the rules to these tests and to deeper ones
// elsewhere; TestSecurityIndexCoversEveryRule keeps that map honest.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"hash"
	"html"
	"io"
	mrand "math/rand/v2"
	"net/http"
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
	"testing/cryptotest"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/nyaruka/phonenumbers"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// --- Helpers shared by the rule tests -------------------------------------

// secBrowser is e.browser for a subtest of a shared handler: its checks
// fail the subtest, not the test that made the handler.
func secBrowser(t testing.TB, e *htEnv, user string) *htBrowser {
	b := e.browser(user)
	b.t = t
	return b
}

// secCodeRE finds a code of any length in an SMS.
var secCodeRE = regexp.MustCompile(`code: (\d+)\n`)

// secLastCode is the code of the newest message in e's outbox.
func secLastCode(t testing.TB, e *htEnv) string {
	t.Helper()
	msgs := e.messages()
	if len(msgs) == 0 {
		t.Fatal("outbox is empty: no code was sent")
	}
	sub := secCodeRE.FindStringSubmatch(msgs[len(msgs)-1].Body)
	if sub == nil {
		t.Fatalf("no code in message %q", msgs[len(msgs)-1].Body)
	}
	return sub[1]
}

// secAll applies several configure functions in order.
func secAll(fs ...func(*Handler)) func(*Handler) {
	return func(h *Handler) {
		for _, f := range fs {
			if f != nil {
				f(h)
			}
		}
	}
}

// secManySends lifts the send limits out of reach, for tests that send
// many codes to one number and are about something else.
func secManySends(h *Handler) {
	big := 1_000_000
	h.Limits = &LimitsConfig{Phone: &big, Identity: &big, IP: &big, Prefix: &big, Country: &big, DailyBudget: &big}
	// Many of those codes go unverified to one number, which the fraud
	// guard would block; rule 37's test has it on.
	h.FraudGuard = &FraudGuardConfig{Off: true}
}

// secProvision provisions and validates a handler set up as htNew sets
// one up, changed by configure, and returns what it refused.
func secProvision(t *testing.T, configure func(*Handler)) error {
	t.Helper()
	store, _ := json.Marshal(map[string]string{"type": "memory", "name": fmt.Sprintf("sec-prov-%d-%d", os.Getpid(), htSeq.Add(1))})
	gateway, _ := json.Marshal(map[string]string{"type": "console", "outbox": filepath.Join(t.TempDir(), "outbox.jsonl")})
	h := &Handler{
		ProtectRaw:      caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/settings*"]`)}},
		IdentityOptions: IdentityOptions{Identity: "{http.auth.user.id}", Phone: htNumber},
		TokenOptions:    TokenOptions{SigningKey: htKey},
		StoreRaw:        store,
		GatewayRaw:      gateway,
		clock:           htNewClock(),
	}
	configure(h)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		return err
	}
	return h.Validate()
}

// secAdapt adapts a Caddyfile whose sms_stepup block holds lines.
func secAdapt(lines ...string) error {
	var b strings.Builder
	b.WriteString("example.com {\n\tsms_stepup /settings* {\n\t\tidentity {http.auth.user.id}\n\t\tphone {http.request.header.X-Phone}\n")
	for _, l := range lines {
		b.WriteString("\t\t" + l + "\n")
	}
	b.WriteString("\t}\n}\n")
	_, _, err := cfAdapt([]byte(b.String()))
	return err
}

// secConfigRefused asserts that a setting is refused both in a Caddyfile
// and in a JSON config (which never meets the Caddyfile parser), with an
// error naming the option.
func secConfigRefused(t *testing.T, caddyfileLine string, configure func(*Handler), option string) {
	t.Helper()
	if err := secAdapt(caddyfileLine); err == nil || !strings.Contains(err.Error(), option) {
		t.Errorf("Caddyfile %q: error %v, want one naming %s", caddyfileLine, err, option)
	}
	if err := secProvision(t, configure); err == nil || !strings.Contains(err.Error(), option) {
		t.Errorf("JSON config like %q: error %v, want one naming %s", caddyfileLine, err, option)
	}
}

// secConfigAccepted is the positive control of secConfigRefused.
func secConfigAccepted(t *testing.T, caddyfileLine string, configure func(*Handler)) {
	t.Helper()
	if err := secAdapt(caddyfileLine); err != nil {
		t.Errorf("Caddyfile %q refused: %v", caddyfileLine, err)
	}
	if err := secProvision(t, configure); err != nil {
		t.Errorf("JSON config like %q refused: %v", caddyfileLine, err)
	}
}

// secNext is the next handler of secServe: it counts and answers "next".
func secNext(e *htEnv) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		e.next.Add(1)
		_, err := io.WriteString(w, "next")
		return err
	})
}

// secServe serves a request built with b.request (and changed as a test
// needs) and keeps the cookies it sets in b's jar.
func secServe(b *htBrowser, r *http.Request) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	w := httptest.NewRecorder()
	if err := b.e.h.ServeHTTP(w, r, secNext(b.e)); err != nil {
		b.t.Fatalf("%s %s: handler error: %v", r.Method, r.URL, err)
	}
	b.jar.SetCookies(htBase, w.Result().Cookies())
	return w, w.Body.String()
}

// secFrom sets the client address Caddy worked out for r (from the
// connection, or from trusted_proxies).
func secFrom(r *http.Request, ip string) *http.Request {
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, ip)
	return r
}

// secCSRF opens the step-up page with extra headers and keeps its CSRF
// token in the browser, for configs where the page needs a header (the
// phone placeholder) to render its form.
func secCSRF(b *htBrowser, extra ...string) string {
	b.t.Helper()
	w, body := secServe(b, b.request(http.MethodGet, "/_stepup/?r=%2Fsettings", nil, extra...))
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

// secSendTo asks for a code to phone (the phone placeholder reads the
// X-Phone header) from the client address ip.
func secSendTo(b *htBrowser, ip, phone string, extra ...string) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	hdrs := append([]string{"X-Phone: " + phone}, extra...)
	if b.token == "" {
		secCSRF(b, hdrs...)
	}
	r := b.request(http.MethodPost, "/_stepup/send", url.Values{"csrf": {b.token}, "r": {"/settings"}}, hdrs...)
	return secServe(b, secFrom(r, ip))
}

// secPhoneHeader takes each identity's number from the X-Phone header,
// which a trusted proxy sets (as the ht harness's requests say).
func secPhoneHeader(h *Handler) {
	h.Phone, h.HeadersSetBy = "{http.request.header.X-Phone}", "trusted_proxy"
}

// secWait is how long a 429 says to wait: Retry-After, or the seconds of
// a cooldown message.
func secWait(t testing.TB, w *httptest.ResponseRecorder, body string) time.Duration {
	t.Helper()
	if w.Header().Get("Retry-After") != "" {
		return htRetryAfter(t, w)
	}
	m := regexp.MustCompile(`Please wait (\d+) seconds`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("a 429 without Retry-After or a cooldown:\n%s", body)
	}
	n, _ := strconv.Atoi(m[1])
	return time.Duration(n) * time.Second
}

// secSendOtherThan asks for a code (a new one in the browser's challenge,
// if it has one), waiting out any cooldown, until the code differs from
// old: two codes match one time in a million, and a test that tells them
// apart must not depend on luck.
func secSendOtherThan(t testing.TB, e *htEnv, b *htBrowser, old ...string) string {
	t.Helper()
	for range 5 {
		w, body := b.postSend()
		if w.Code == http.StatusTooManyRequests {
			e.clock.Add(secWait(t, w, body))
			w, body = b.postSend()
		}
		if w.Code != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", w.Code, body)
		}
		if code := secLastCode(t, e); !secContainsAny([]string{code}, old) {
			return code
		}
	}
	t.Fatal("five codes in a row repeated an earlier one")
	return ""
}

// secStorm serves all requests at once, each in its own goroutine, and
// returns their answers.
func secStorm(t *testing.T, e *htEnv, reqs []*http.Request) []*httptest.ResponseRecorder {
	t.Helper()
	out := make([]*httptest.ResponseRecorder, len(reqs))
	errs := make([]error, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = httptest.NewRecorder()
			errs[i] = e.h.ServeHTTP(out[i], r, secNext(e))
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("handler errors under load: %v", err)
	}
	return out
}

// secRedis starts a private redis-server for the test.
func secRedis(t *testing.T) *redistest.Server {
	t.Helper()
	return redistest.Start(t)
}

var secRedisSeq atomic.Int64

// secRedisStore puts the handler's state in srv under a key prefix of its
// own. The time-outs are generous, for tests that load a busy machine with
// hundreds of requests at once.
func secRedisStore(srv *redistest.Server) func(*Handler) {
	return secRedisStoreTimeout(srv, 10*time.Second)
}

// secRedisStoreTimeout is secRedisStore with dial and command time-outs of
// d: short ones make a server that is down fail requests fast.
func secRedisStoreTimeout(srv *redistest.Server, d time.Duration) func(*Handler) {
	prefix := fmt.Sprintf("sec%d-%d:", os.Getpid(), secRedisSeq.Add(1))
	raw, _ := json.Marshal(map[string]any{"type": "redis", "url": "redis://" + srv.Addr + "/0", "key_prefix": prefix,
		"dial_timeout": d.String(), "command_timeout": d.String()})
	return func(h *Handler) { h.StoreRaw = raw }
}

// secStores are the stores that keep the atomicity rules: each subtest
// gets a configure function for its handler.
func secStores(t *testing.T) map[string]func(*Handler) {
	t.Helper()
	srv := secRedis(t)
	return map[string]func(*Handler){
		"memory": func(*Handler) {},
		"redis":  secRedisStore(srv),
	}
}

// secNumberForms are the ways a number can be written, none of which may
// appear where only a hash or a mask belongs.
func secNumberForms(e164 string) []string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		panic(err)
	}
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	forms := []string{e164, strings.TrimPrefix(e164, "+"), nsn}
	for _, f := range []phonenumbers.PhoneNumberFormat{phonenumbers.NATIONAL, phonenumbers.INTERNATIONAL} {
		s := phonenumbers.Format(num, f)
		forms = append(forms, s, strings.TrimPrefix(s, "+"+strconv.Itoa(int(num.GetCountryCode()))+" "))
	}
	return forms
}

// secDigitsRE matches a run of digits; secHasCode uses it so that a
// 6-digit code counts as present only as a whole run, not as part of a
// longer number such as a timestamp.
var secDigitsRE = regexp.MustCompile(`\d+`)

func secHasCode(s, code string) bool {
	for _, run := range secDigitsRE.FindAllString(s, -1) {
		if run == code {
			return true
		}
	}
	return false
}

// --- Codes ----------------------------------------------------------------

// secBlockReader yields 16-byte blocks, each of one byte value: 0, 1, ...
// 255, once each. NewCode reads 16 bytes at a time, so every code it makes
// from this reader shows what one byte value turns into.
type secBlockReader struct{ next int }

func (r *secBlockReader) Read(p []byte) (int, error) {
	if r.next > 255 {
		return 0, io.EOF
	}
	n := copy(p, bytes.Repeat([]byte{byte(r.next)}, 16))
	r.next++
	return n, nil
}

// secChiSquare is the chi-square statistic of the digits of codes against
// the uniform distribution, over about a million digits.
func secChiSquare(codes func() string) float64 {
	var counts [10]int
	n := 0
	for n < 1_000_000 {
		for _, c := range codes() {
			counts[c-'0']++
			n++
		}
	}
	want := float64(n) / 10
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - want
		chi += d * d / want
	}
	return chi
}

// Not parallel: one subtest sets the process's crypto/rand source.
func TestSecurityRule01_CodesFromCryptoRandUniform(t *testing.T) {
	t.Run("a code has six digits by default", func(t *testing.T) {
		e := htNew(t, nil, nil)
		secBrowser(t, e, "r01-six").send()
		if code := secLastCode(t, e); len(code) != 6 {
			t.Fatalf("code %q: want 6 digits", code)
		}
	})
	t.Run("code_length 10 makes ten-digit codes", func(t *testing.T) {
		secConfigAccepted(t, "code_length 10", func(h *Handler) { h.CodeLength = 10 })
		e := htNew(t, nil, func(h *Handler) { h.CodeLength = 10 })
		b := secBrowser(t, e, "r01-ten")
		if w, body := b.postSend(); w.Code != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", w.Code, body)
		}
		code := secLastCode(t, e)
		if len(code) != 10 {
			t.Fatalf("code %q: want 10 digits", code)
		}
		if w, body := b.verify(code); w.Code != http.StatusSeeOther {
			t.Fatalf("the ten-digit code: %d\n%s", w.Code, body)
		}
	})
	for _, bad := range []int{5, -1, 11} {
		t.Run(fmt.Sprintf("code_length %d is a config error", bad), func(t *testing.T) {
			secConfigRefused(t, fmt.Sprintf("code_length %d", bad), func(h *Handler) { h.CodeLength = bad }, "code_length")
		})
	}
	t.Run("code_length 0 in a Caddyfile is a config error", func(t *testing.T) {
		// In JSON 0 means "unset", so the default of 6.
		if err := secAdapt("code_length 0"); err == nil || !strings.Contains(err.Error(), "code_length") {
			t.Fatalf("Caddyfile code_length 0: %v", err)
		}
	})
	t.Run("each byte below 250 gives one digit, each digit from exactly 25 of them, and 250 to 255 give none", func(t *testing.T) {
		// A sampler that took every byte mod 10 would give 0-5 from 26
		// byte values and 6-9 from 25: modulo bias.
		r := &secBlockReader{}
		var counts [10]int
		codes := 0
		for {
			code, err := otp.NewCode(r, 6)
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(code, code[:1]) != 6 {
				t.Fatalf("code %q from one repeated byte value has different digits", code)
			}
			counts[code[0]-'0']++
			codes++
		}
		if codes != 250 {
			t.Errorf("%d codes from the byte values 0-255, want 250 (250-255 rejected)", codes)
		}
		for d, n := range counts {
			if n != 25 {
				t.Errorf("digit %d comes from %d byte values, want 25", d, n)
			}
		}
	})
	t.Run("digits from an injected seeded source pass a chi-square test that a modulo-biased sampler fails", func(t *testing.T) {
		// About 46 is the 99.9999th percentile with 9 degrees of freedom;
		// the bias of b%10 gives about 380 over a million digits. The
		// source is seeded, so the outcome is the same on every run.
		const bound = 60
		src := mrand.NewChaCha8([32]byte{'s', 'e', 'c'})
		chi := secChiSquare(func() string {
			code, err := otp.NewCode(src, 10)
			if err != nil {
				t.Fatal(err)
			}
			return code
		})
		if chi > bound {
			t.Errorf("chi-square %.1f of NewCode exceeds %d: the digits are not uniform", chi, bound)
		}
		biased := secChiSquare(func() string {
			b := make([]byte, 10)
			src.Read(b)
			for i := range b {
				b[i] = '0' + b[i]%10
			}
			return string(b)
		})
		if biased <= bound {
			t.Errorf("chi-square %.1f of a biased sampler is within %d: the check cannot fail", biased, bound)
		}
	})
	t.Run("the codes a provisioned handler sends come from crypto/rand", func(t *testing.T) {
		// Seeding crypto/rand's process-wide source makes the handler's
		// codes repeat with the seed and change with it; codes from any
		// other source (math/rand, a fixed seed) would not follow it.
		codeWith := func(seed uint64) string {
			cryptotest.SetGlobalRandom(t, seed)
			e := htNew(t, nil, func(h *Handler) { h.CodeLength = 10 })
			if w, body := secBrowser(t, e, "r01-rand").postSend(); w.Code != http.StatusSeeOther {
				t.Fatalf("send: %d\n%s", w.Code, body)
			}
			return secLastCode(t, e)
		}
		a, again, other := codeWith(1), codeWith(1), codeWith(2)
		if a != again {
			t.Errorf("the same crypto/rand seed gave codes %s and %s: the codes do not come from crypto/rand", a, again)
		}
		if a == other {
			t.Errorf("two crypto/rand seeds gave the same code %s: the codes do not come from crypto/rand", a)
		}
	})
}

func TestSecurityRule02_CodeLivesAtMostTenMinutes(t *testing.T) {
	t.Parallel()
	t.Run("a code entered one second past the default five minutes is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r02-late")
		code := b.send()
		e.clock.Add(5*time.Minute + time.Second)
		w, body := b.verify(code)
		htWant(t, "verify after 5m1s", w, body, http.StatusUnprocessableEntity, "has expired or was already used")
		b.wantStepUp("after an expired code")
	})
	t.Run("a code entered one second before the five minutes are up works", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r02-intime")
		code := b.send()
		e.clock.Add(5*time.Minute - time.Second)
		if w, body := b.verify(code); w.Code != http.StatusSeeOther {
			t.Fatalf("verify after 4m59s: %d\n%s", w.Code, body)
		}
	})
	t.Run("with code_ttl 10m a code entered one second past ten minutes is refused", func(t *testing.T) {
		t.Parallel()
		secConfigAccepted(t, "code_ttl 10m", func(h *Handler) { h.CodeTTL = caddy.Duration(10 * time.Minute) })
		e := htNew(t, nil, func(h *Handler) { h.CodeTTL = caddy.Duration(10 * time.Minute) })
		b := secBrowser(t, e, "r02-ten")
		code := b.send()
		e.clock.Add(10*time.Minute + time.Second)
		w, body := b.verify(code)
		htWant(t, "verify after 10m1s", w, body, http.StatusUnprocessableEntity, "has expired or was already used")
	})
	for _, bad := range []struct {
		line string
		d    time.Duration
	}{{"code_ttl 11m", 11 * time.Minute}, {"code_ttl 10m1s", 10*time.Minute + time.Second}, {"code_ttl 1h", time.Hour}, {"code_ttl -1s", -time.Second}} {
		t.Run(bad.line+" is a config error", func(t *testing.T) {
			t.Parallel()
			secConfigRefused(t, bad.line, func(h *Handler) { h.CodeTTL = caddy.Duration(bad.d) }, "code_ttl")
		})
	}
}

func TestSecurityRule03_StoreKeepsOnlyAnHMACOfTheCode(t *testing.T) {
	t.Parallel()
	srv := secRedis(t)
	ctx := context.Background()

	// A step-up through a Redis store, and every key and value it left.
	redisEnv := func(t *testing.T, configure func(*Handler)) (*htEnv, func() string) {
		e := htNew(t, nil, secAll(secRedisStore(srv), configure))
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		prefix := ""
		_ = json.Unmarshal(e.h.StoreRaw, &struct {
			P *string `json:"key_prefix"`
		}{&prefix})
		dump := func() string {
			var b strings.Builder
			keys, err := client.Keys(ctx, prefix+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) == 0 {
				t.Fatal("the store holds no keys: the dump would prove nothing")
			}
			for _, k := range keys {
				b.WriteString(k + "\n")
				switch typ := client.Type(ctx, k).Val(); typ {
				case "string":
					b.WriteString(client.Get(ctx, k).Val())
				case "hash":
					for f, v := range client.HGetAll(ctx, k).Val() {
						b.WriteString(f + "=" + v + "\n")
					}
				case "zset":
					for _, z := range client.ZRangeWithScores(ctx, k, 0, -1).Val() {
						fmt.Fprintf(&b, "%v %v\n", z.Member, z.Score)
					}
				case "set":
					b.WriteString(strings.Join(client.SMembers(ctx, k).Val(), "\n"))
				case "list":
					b.WriteString(strings.Join(client.LRange(ctx, k, 0, -1).Val(), "\n"))
				case "none":
					// Expired between KEYS and TYPE: its value is gone from
					// the store; its name is in the dump all the same.
				default:
					t.Fatalf("key %s of type %s: the dump does not read it", k, typ)
				}
				b.WriteString("\n")
			}
			return b.String()
		}
		return e, dump
	}

	t.Run("the stored MAC is HMAC-SHA256 of the challenge id and code under the server's key", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r03-mac")
		code := b.send()
		id := b.cookie("__Host-stepup_challenge")
		c, err := e.h.store.Challenge(ctx, "r03-mac", id, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		root := hmac.New(sha256.New, []byte(htKey))
		root.Write([]byte("caddy-sms-stepup/v1/code"))
		m := hmac.New(sha256.New, root.Sum(nil))
		m.Write([]byte(id + "\x00" + code))
		if !hmac.Equal(c.CodeMAC, m.Sum(nil)) {
			t.Errorf("stored MAC %x is not HMAC-SHA256(code key, id 0 code)", c.CodeMAC)
		}
		unkeyed := sha256.Sum256([]byte(id + "\x00" + code))
		other, _ := otp.DeriveKeys([]byte("another-signing-key-0123456789abcdefghij"))
		if bytes.Equal(c.CodeMAC, unkeyed[:]) || bytes.Equal(c.CodeMAC, other.CodeMAC(id, code)) {
			t.Error("the stored MAC does not depend on the server's key")
		}
		doc, _ := json.Marshal(c)
		if secHasCode(string(doc), code) || secHasCode(fmt.Sprint(*c), code) {
			t.Errorf("the stored challenge holds the code: %s", doc)
		}
	})
	t.Run("a Redis dump after a send holds no code and no full number", func(t *testing.T) {
		t.Parallel()
		e, dump := redisEnv(t, nil)
		b := secBrowser(t, e, "r03-dump")
		code := b.send()
		d := dump()
		if secHasCode(d, code) {
			t.Errorf("the Redis dump holds the code %s:\n%s", code, d)
		}
		for _, f := range secNumberForms(htNumber) {
			if strings.Contains(d, f) {
				t.Errorf("the Redis dump holds the number as %q", f)
			}
		}
		// The masked form is sealed too: its last 4 digits complete the
		// prefix the fraud guard's send record keeps in clear.
		if strings.Contains(d, "****") || strings.Contains(d, "-5678") {
			t.Errorf("the Redis dump holds the masked number in clear:\n%s", d)
		}
		if !strings.Contains(d, "sealed1.") || !strings.Contains(d, "prefix:+81901234") {
			t.Errorf("the dump has no sealed masked number or no fraud guard record; is it the right dump?\n%s", d)
		}
	})
	t.Run("a Redis dump after enrolment keeps the number sealed, hashed and masked only", func(t *testing.T) {
		t.Parallel()
		e, dump := redisEnv(t, func(h *Handler) { h.Phone, h.Enroll = "", true })
		b := secBrowser(t, e, "r03-enrol")
		if resp, body := enEnrol(t, e, b, "090-2222-3333", "+819022223333"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enrol: %d\n%s", resp.StatusCode, body)
		}
		d := dump()
		for _, f := range secNumberForms("+819022223333") {
			if strings.Contains(d, f) {
				t.Errorf("the Redis dump holds the enrolled number as %q", f)
			}
		}
		if strings.Contains(d, "****") || strings.Contains(d, "-3333") {
			t.Errorf("the Redis dump holds the masked number in clear:\n%s", d)
		}
		if !strings.Contains(d, "sealed1.") {
			t.Errorf("the dump has no sealed masked number; is it the right dump?\n%s", d)
		}
	})
}

func TestSecurityRule04_ResendReplacesTheCode(t *testing.T) {
	t.Parallel()
	t.Run("the old code after a resend is refused and the new one works", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r04-old")
		old := b.send()
		code := secSendOtherThan(t, e, b, old)
		w, body := b.verify(old)
		htWant(t, "the old code", w, body, http.StatusUnprocessableEntity, "4 attempts left")
		w, body = b.verify(code)
		htWant(t, "the new code", w, body, http.StatusSeeOther, "")
		b.wantPass("after the new code")
	})
	t.Run("the first code after two resends is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r04-first")
		first := b.send()
		e.clock.Add(30 * time.Second)
		b.send()
		secSendOtherThan(t, e, b, first)
		w, body := b.verify(first)
		htWant(t, "the first code", w, body, http.StatusUnprocessableEntity, "attempts left")
		b.wantStepUp("after the first code")
	})
	t.Run("the old code in another browser holding the same challenge is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r04-other")
		old := b.send()
		secSendOtherThan(t, e, b, old)
		other := secBrowser(t, e, "r04-other")
		other.setCookie("__Host-stepup_challenge", b.cookie("__Host-stepup_challenge"))
		w, body := other.verify(old)
		htWant(t, "the old code elsewhere", w, body, http.StatusUnprocessableEntity, "attempts left")
		other.wantStepUp("after the old code elsewhere")
	})
}

func TestSecurityRule05_CodeWorksOnce(t *testing.T) {
	t.Parallel()
	t.Run("a code replayed after it worked is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r05-replay")
		code := b.send()
		challenge := b.cookie("__Host-stepup_challenge")
		if w, body := b.verify(code); w.Code != http.StatusSeeOther {
			t.Fatalf("first verify: %d\n%s", w.Code, body)
		}
		b.setCookie("__Host-stepup_challenge", challenge)
		w, body := b.verify(code)
		htWant(t, "the same code again", w, body, http.StatusUnprocessableEntity, "has expired or was already used")
		replay := secBrowser(t, e, "r05-replay")
		replay.setCookie("__Host-stepup_challenge", challenge)
		w, body = replay.verify(code)
		htWant(t, "the same code from another browser", w, body, http.StatusUnprocessableEntity, "has expired or was already used")
		replay.wantStepUp("after a replayed code")
	})
	for name, store := range secStores(t) {
		t.Run("64 parallel submissions of the right code give one step-up ("+name+" store)", func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, store)
			b := secBrowser(t, e, "r05-race")
			code := b.send()
			reqs := make([]*http.Request, 64)
			for i := range reqs {
				reqs[i] = b.request(http.MethodPost, "/_stepup/verify", url.Values{"csrf": {b.csrf()}, "r": {"/settings"}, "code": {code}})
			}
			ok, refused := 0, 0
			for _, w := range secStorm(t, e, reqs) {
				switch {
				case w.Code == http.StatusSeeOther && strings.Contains(strings.Join(w.Header().Values("Set-Cookie"), "\n"), "__Host-stepup="):
					ok++
				case w.Code == http.StatusUnprocessableEntity:
					refused++
				default:
					t.Errorf("verify: status %d", w.Code)
				}
			}
			if ok != 1 || refused != len(reqs)-1 {
				t.Fatalf("%d step-ups and %d refusals from %d parallel right codes, want 1 and %d", ok, refused, len(reqs), len(reqs)-1)
			}
		})
	}
}

func TestSecurityRule06_CodeBoundToChallengeIdentityAndSession(t *testing.T) {
	t.Parallel()
	t.Run("a code from session A entered in session B is refused and A's code still works in A", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) { h.Session = "{http.request.cookie.app_session}" })
		a := secBrowser(t, e, "r06-session")
		a.setCookie("app_session", "session-A")
		code := a.send()
		b := secBrowser(t, e, "r06-session")
		b.setCookie("app_session", "session-B")
		b.setCookie("__Host-stepup_challenge", a.cookie("__Host-stepup_challenge"))
		w, body := b.verify(code)
		htWant(t, "A's code in session B", w, body, http.StatusUnprocessableEntity, "has expired or was already used")
		if b.cookie("__Host-stepup") != "" {
			t.Fatal("session B got a step-up cookie")
		}
		w, body = a.verify(code)
		htWant(t, "A's code in A", w, body, http.StatusSeeOther, "")
	})
	t.Run("identity A's code and challenge entered by identity B are refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		a := secBrowser(t, e, "r06-alice")
		code := a.send()
		b := secBrowser(t, e, "r06-bob")
		b.setCookie("__Host-stepup_challenge", a.cookie("__Host-stepup_challenge"))
		w, body := b.verify(code)
		htWant(t, "A's code as B", w, body, http.StatusUnprocessableEntity, "has expired or was already used")
		b.wantStepUp("B after A's code")
		w, body = a.verify(code)
		htWant(t, "A's code as A", w, body, http.StatusSeeOther, "")
	})
	t.Run("the code of one challenge entered on another challenge of the same identity is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		one := secBrowser(t, e, "r06-two")
		first := one.send()
		two := secBrowser(t, e, "r06-two")
		second := secSendOtherThan(t, e, two, first)
		w, body := two.verify(first)
		htWant(t, "challenge 1's code on challenge 2", w, body, http.StatusUnprocessableEntity, "attempts left")
		w, body = two.verify(second)
		htWant(t, "challenge 2's own code", w, body, http.StatusSeeOther, "")
	})
}

func TestSecurityRule07_AttemptAndFailureLimits(t *testing.T) {
	t.Parallel()
	t.Run("after five wrong codes the challenge is dead and the right code fails", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r07-five")
		code := b.send()
		challenge := b.cookie("__Host-stepup_challenge")
		for range 4 {
			b.verify(htWrong(code))
		}
		w, body := b.verify(htWrong(code))
		htWant(t, "the fifth wrong code", w, body, http.StatusUnprocessableEntity, "can no longer be used")
		b.setCookie("__Host-stepup_challenge", challenge)
		w, body = b.verify(code)
		htWant(t, "the right code after five wrong ones", w, body, http.StatusUnprocessableEntity, "")
		b.wantStepUp("after a dead challenge")
	})
	t.Run("a new code does not reset the failures: the tenth wrong code over two codes locks the identity", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r07-ten")
		code := b.send()
		for range 5 {
			b.verify(htWrong(code))
		}
		e.clock.Add(30 * time.Second)
		code = b.send()
		challenge := b.cookie("__Host-stepup_challenge")
		for range 4 {
			b.verify(htWrong(code))
		}
		w, body := b.verify(htWrong(code))
		htWant(t, "the tenth wrong code", w, body, http.StatusTooManyRequests, "Too many wrong codes")
		e.clock.Add(time.Second)
		b.setCookie("__Host-stepup_challenge", challenge)
		w, body = b.verify(code)
		htWant(t, "the right code while locked", w, body, http.StatusTooManyRequests, "")
	})
	t.Run("lock-outs grow from 30s to an hour, and the 100th consecutive wrong code locks the identity until an operator unlocks it", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, secManySends)
		b := secBrowser(t, e, "r07-hundred")
		delays := map[int]time.Duration{}
		failures, live, code := 0, false, ""
		for failures < 100 {
			if !live {
				w, body := b.postSend()
				if w.Code == http.StatusTooManyRequests {
					e.clock.Add(secWait(t, w, body))
					continue
				}
				htWant(t, "send", w, body, http.StatusSeeOther, "")
				code, live = secLastCode(t, e), true
			}
			w, body := b.verify(htWrong(code))
			failures++
			switch {
			case w.Code == http.StatusTooManyRequests && failures == 100:
				// Waiting won't help: no Retry-After, and a word on who can.
				if ra := w.Header().Get("Retry-After"); ra != "" || !strings.Contains(body, "contact support") {
					t.Errorf("the 100th wrong code: Retry-After %q, want none and a page saying to contact support:\n%s", ra, body)
				}
				live = false
			case w.Code == http.StatusTooManyRequests:
				delays[failures] = htRetryAfter(t, w)
				live = false
				e.clock.Add(delays[failures])
			case strings.Contains(body, "can no longer be used"):
				live = false
			case w.Code != http.StatusUnprocessableEntity:
				t.Fatalf("wrong code %d: status %d\n%s", failures, w.Code, body)
			}
		}
		want := map[int]time.Duration{10: 30 * time.Second, 11: time.Minute, 12: 2 * time.Minute, 13: 4 * time.Minute,
			14: 8 * time.Minute, 15: 16 * time.Minute, 16: 32 * time.Minute}
		for f := 17; f < 100; f++ {
			want[f] = time.Hour
		}
		for f := 1; f < 100; f++ {
			got, locked := delays[f]
			w, wantLocked := want[f]
			switch {
			case locked != wantLocked:
				t.Errorf("wrong code %d: locked %t, want %t", f, locked, wantLocked)
			case locked && (got < w || got > w+time.Second):
				t.Errorf("wrong code %d: locked for %s, want %s", f, got, w)
			}
		}
		e.clock.Add(2 * time.Hour)
		w, body := b.postSend()
		htWant(t, "a send two hours after the 100th wrong code", w, body, http.StatusTooManyRequests, "contact support")
		if st, err := e.h.service.Identity(context.Background(), "r07-hundred"); err != nil || st.Failures != 100 {
			t.Fatalf("identity state %+v, %v: want 100 failures", st, err)
		}
	})
	t.Run("the 101st consecutive wrong code is not evaluated, a day or a year later, until an operator unlocks", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) {
			secManySends(h)
			// 100 free failures in a row reach the hard limit quickly.
			h.FailureBudget, h.MaxAttempts = 100, 10
		})
		b := secBrowser(t, e, "r07-after")
		failures := 0
		for failures < 100 {
			code := b.send()
			for range 10 {
				b.verify(htWrong(code))
				failures++
			}
			e.clock.Add(10 * time.Minute)
		}
		if st, _ := e.h.service.Identity(context.Background(), "r07-after"); st.Failures != 100 || !st.Locked(e.clock.Now()) {
			t.Fatalf("after 100 wrong codes: %+v, want 100 failures and a lock-out", st)
		}
		for _, wait := range []time.Duration{25 * time.Hour, 400 * 24 * time.Hour} {
			e.clock.Add(wait)
			w, body := b.postSend()
			if w.Code == http.StatusSeeOther {
				w, body = b.verify(htWrong(secLastCode(t, e)))
			}
			if w.Code != http.StatusTooManyRequests {
				t.Fatalf("%s after 100 consecutive wrong codes, with no right code since, a new code was sent and a "+
					"101st wrong code evaluated (status %d); SECURITY.md rule 7 allows never more than 100 consecutive failures:\n%s", wait, w.Code, body)
			}
		}
		// Control: an operator's unlock lifts it.
		if err := e.h.service.Unlock(context.Background(), "r07-after"); err != nil {
			t.Fatal(err)
		}
		code := b.send()
		if w, body := b.verify(code); w.Code != http.StatusSeeOther {
			t.Fatalf("after an operator's unlock: %d\n%s", w.Code, body)
		}
	})
	t.Run("max_attempts 11 and failure_budget 101 are config errors", func(t *testing.T) {
		t.Parallel()
		secConfigRefused(t, "max_attempts 11", func(h *Handler) { h.MaxAttempts = 11 }, "max_attempts")
		secConfigRefused(t, "failure_budget 101", func(h *Handler) { h.FailureBudget = 101 }, "failure")
	})
}

// secVerifies records what the store's Verify answered.
type secVerifies struct {
	otp.Store
	mu      sync.Mutex
	results []otp.VerifyResult
}

func (s *secVerifies) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	res, err := s.Store.Verify(ctx, req)
	s.mu.Lock()
	s.results = append(s.results, res)
	s.mu.Unlock()
	return res, err
}

func TestSecurityRule08_AtomicCountCompareConsume(t *testing.T) {
	t.Parallel()
	for name, store := range secStores(t) {
		t.Run("200 parallel wrong codes against max_attempts 5 evaluate exactly 5 ("+name+" store)", func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, store)
			user := "r08-" + name
			b := secBrowser(t, e, user)
			code := b.send()
			rec := &secVerifies{Store: e.store.Store}
			e.store.Store = rec
			reqs := make([]*http.Request, 200)
			for i := range reqs {
				reqs[i] = b.request(http.MethodPost, "/_stepup/verify", url.Values{"csrf": {b.csrf()}, "r": {"/settings"}, "code": {htWrong(code)}})
			}
			for _, w := range secStorm(t, e, reqs) {
				if w.Code != http.StatusUnprocessableEntity {
					t.Errorf("a wrong code answered %d", w.Code)
				}
			}
			// The four evaluations that left attempts each say how many,
			// once; the fifth kills the challenge; every other request
			// finds it dead or gone without comparing.
			left := map[int]int{}
			for _, r := range rec.results {
				if r.Status == otp.VerifyWrong {
					left[r.Remaining]++
				}
			}
			if len(rec.results) != len(reqs) || len(left) != 4 || left[4] != 1 || left[3] != 1 || left[2] != 1 || left[1] != 1 {
				t.Errorf("%d verifications; attempts left after the wrong ones: %v, want 4, 3, 2 and 1 once each", len(rec.results), left)
			}
			st, err := e.h.service.Identity(context.Background(), user)
			if err != nil {
				t.Fatal(err)
			}
			if st.Failures != 5 {
				t.Fatalf("%d wrong codes were evaluated, want 5", st.Failures)
			}
			w, body := b.verify(code)
			htWant(t, "the right code after the storm", w, body, http.StatusUnprocessableEntity, "")
		})
	}
}

// --- Verification ---------------------------------------------------------

// secFuncs parses the non-test Go files of dir and returns the function or
// method declarations named name, with the file set and sources to quote
// them.
func secFuncs(t *testing.T, dir, name string) ([]*ast.FuncDecl, *token.FileSet, map[string][]byte) {
	t.Helper()
	fset := token.NewFileSet()
	srcs := map[string][]byte{}
	var out []*ast.FuncDecl
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		srcs[fset.File(f.Pos()).Name()] = src
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == name {
				out = append(out, fn)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no function %s in %s", name, dir)
	}
	return out, fset, srcs
}

// secCompares returns the package-qualified calls ("subtle.ConstantTimeCompare")
// made in fns and the source of every == or != comparison in them.
func secCompares(fns []*ast.FuncDecl, fset *token.FileSet, srcs map[string][]byte) (calls map[string]bool, compares []string) {
	calls = map[string]bool{}
	for _, fn := range fns {
		ast.Inspect(fn, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if pkg, ok := n.X.(*ast.Ident); ok {
					calls[pkg.Name+"."+n.Sel.Name] = true
				}
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					start, end := fset.Position(n.Pos()), fset.Position(n.End())
					compares = append(compares, string(srcs[start.Filename][start.Offset:end.Offset]))
				}
			}
			return true
		})
	}
	return calls, compares
}

func TestSecurityRule09_ConstantTimeCompare(t *testing.T) {
	t.Parallel()
	leaky := []string{"bytes.Equal", "bytes.Compare", "reflect.DeepEqual", "slices.Equal", "strings.EqualFold"}
	t.Run("the memory store compares code MACs with crypto/subtle and never with ==, bytes.Equal or the like", func(t *testing.T) {
		t.Parallel()
		fns, fset, srcs := secFuncs(t, "../otp/store/memory", "Verify")
		calls, compares := secCompares(fns, fset, srcs)
		if !calls["subtle.ConstantTimeCompare"] {
			t.Error("the memory store's Verify does not call subtle.ConstantTimeCompare")
		}
		for _, l := range leaky {
			if calls[l] {
				t.Errorf("the memory store's Verify calls %s, which stops at the first difference", l)
			}
		}
		for _, c := range compares {
			if strings.Contains(strings.ToLower(c), "mac") && !strings.HasPrefix(c, "subtle.ConstantTimeCompare(") {
				t.Errorf("the memory store's Verify compares a MAC with an operator: %s", c)
			}
		}
	})
	t.Run("the Redis script compares code MACs over every byte, never with ==", func(t *testing.T) {
		t.Parallel()
		src, err := os.ReadFile("../otp/store/redis/scripts.go")
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), "scripts.go", src, 0)
		if err != nil {
			t.Fatal(err)
		}
		var lua string
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "verifyScript" {
				return true
			}
			ast.Inspect(vs, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					lua += s
				}
				return true
			})
			return false
		})
		if lua == "" {
			t.Fatal("no verifyScript in otp/store/redis/scripts.go")
		}
		loop := regexp.MustCompile(`for i = 1, #a do\s+diff = bit\.bor\(diff, bit\.bxor\(string\.byte\(a, i\), string\.byte\(b, i\)\)\)\s+end\s+return diff == 0`)
		if !loop.MatchString(lua) {
			t.Errorf("the verify script has no byte loop that ORs the XOR of every byte:\n%s", lua)
		}
		if !strings.Contains(lua, "ct_equal(c[2], ARGV[3])") {
			t.Error("the verify script does not compare the stored MAC (c[2]) with the submitted one (ARGV[3]) through ct_equal")
		}
		if m := regexp.MustCompile(`(c\[2\]|ARGV\[3\])\s*[~=]=`).FindString(lua); m != "" {
			t.Errorf("the verify script compares a MAC with an operator: %s", m)
		}
	})
	t.Run("CSRF tokens are compared with hmac.Equal and never with ==", func(t *testing.T) {
		t.Parallel()
		fns, fset, srcs := secFuncs(t, "../otp", "CheckCSRFToken")
		calls, compares := secCompares(fns, fset, srcs)
		if !calls["hmac.Equal"] && !calls["subtle.ConstantTimeCompare"] {
			t.Error("CheckCSRFToken compares with neither hmac.Equal nor subtle.ConstantTimeCompare")
		}
		for _, c := range compares {
			if !strings.HasSuffix(c, `== ""`) {
				t.Errorf("CheckCSRFToken compares with an operator: %s", c)
			}
		}
	})
	for _, tc := range []struct {
		name  string
		wrong func(string) string
	}{
		{"a code wrong only in its last digit is refused and counted", func(c string) string { return c[:5] + string('0'+(c[5]-'0'+1)%10) }},
		{"a code wrong only in its first digit is refused and counted", func(c string) string { return string('0'+(c[0]-'0'+1)%10) + c[1:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, nil)
			b := secBrowser(t, e, "r09-near")
			code := b.send()
			w, body := b.verify(tc.wrong(code))
			htWant(t, "a near miss", w, body, http.StatusUnprocessableEntity, "4 attempts left")
		})
	}
}

func TestSecurityRule10_SameAnswerWhetherAUserOrNumberExists(t *testing.T) {
	t.Parallel()
	phones := filepath.Join(t.TempDir(), "phones.csv")
	if err := os.WriteFile(phones, []byte("r10-known,"+htNumber+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	known := func(h *Handler) { h.Phone, h.PhoneFile = "", phones }

	for _, tc := range []struct {
		name  string
		extra []string
	}{{"a browser", nil}, {"a JSON client", []string{"Accept: application/json"}}} {
		t.Run(tc.name+" on a protected page gets the same answer for an identity with a number and one without", func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, known)
			answer := func(user string) string {
				before := e.store.calls.Load()
				w, body := secBrowser(t, e, user).get("/settings", tc.extra...)
				var hdr strings.Builder
				w.Header().Write(&hdr)
				return fmt.Sprintf("%d\n%s\n%s\nstore calls: %d", w.Code, hdr.String(), body, e.store.calls.Load()-before)
			}
			if k, n := answer("r10-known"), answer("r10-nobody"); k != n {
				t.Fatalf("an identity with a number gets\n%s\nand one without\n%s", k, n)
			}
		})
	}

	// verifyAnswer is the JSON answer to a wrong-or-right code for whatever
	// challenge cookie the browser holds, without the per-browser CSRF
	// token, and the store calls it took.
	verifyAnswer := func(t *testing.T, e *htEnv, b *htBrowser) string {
		t.Helper()
		_, body := b.get("/_stepup/api/state")
		var state map[string]any
		if err := json.Unmarshal([]byte(body), &state); err != nil {
			t.Fatalf("state: %q", body)
		}
		before := e.store.calls.Load()
		status, out, _ := apCall(b, "/_stepup/api/verify", state["csrf"].(string), `{"code":"123456"}`)
		delete(out, "csrf")
		doc, _ := json.Marshal(out)
		return fmt.Sprintf("%d %s store calls: %d", status, doc, e.store.calls.Load()-before)
	}
	const challenge = "__Host-stepup_challenge"
	never := func(t *testing.T, e *htEnv, b *htBrowser) { b.setCookie(challenge, "AAAAAAAAAAAAAAAAAAAAAA") }
	ref := func(t *testing.T) string {
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r10-verify")
		never(t, e, b)
		return verifyAnswer(t, e, b)
	}
	for _, tc := range []struct {
		name  string
		setup func(*testing.T, *htEnv, *htBrowser)
	}{
		{"a challenge that never existed", never},
		{"another identity's challenge", func(t *testing.T, e *htEnv, b *htBrowser) {
			other := secBrowser(t, e, "r10-other")
			other.send()
			b.setCookie(challenge, other.cookie(challenge))
		}},
		{"an expired challenge", func(t *testing.T, e *htEnv, b *htBrowser) {
			b.send()
			e.clock.Add(6 * time.Minute)
		}},
		{"a used challenge", func(t *testing.T, e *htEnv, b *htBrowser) {
			code := b.send()
			id := b.cookie(challenge)
			if w, _ := b.verify(code); w.Code != http.StatusSeeOther {
				t.Fatalf("verify: %d", w.Code)
			}
			b.setCookie(challenge, id)
		}},
	} {
		t.Run("a code for "+tc.name+" gets the same answer as for any other missing challenge", func(t *testing.T) {
			t.Parallel()
			want := ref(t)
			e := htNew(t, nil, nil)
			b := secBrowser(t, e, "r10-verify")
			tc.setup(t, e, b)
			if got := verifyAnswer(t, e, b); got != want {
				t.Fatalf("answer\n%s\nwant\n%s", got, want)
			}
		})
	}

	t.Run("enrolling a number that serves another identity gets the answer of a number the policy refuses", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) { h.Phone, h.Enroll = "", true; secManySends(h) })
		if resp, body := enEnrol(t, e, secBrowser(t, e, "r10-owner"), "090-2222-3333", "+819022223333"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("owner enrols: %d\n%s", resp.StatusCode, body)
		}
		taken, takenBody := enEnrol(t, e, secBrowser(t, e, "r10-taker"), "090-2222-3333", "+819022223333")
		refused, refusedBody := enPost(secBrowser(t, e, "r10-voip"), "/_stepup/enroll", url.Values{"phone": {"050-1234-5678"}})
		norm := regexp.MustCompile(`(nonce|value)="[^"]*"`)
		if taken.StatusCode != refused.StatusCode || norm.ReplaceAllString(takenBody, "") != norm.ReplaceAllString(refusedBody, "") {
			t.Fatalf("a taken number gets %d\n%s\na refused one %d\n%s", taken.StatusCode, takenBody, refused.StatusCode, refusedBody)
		}
		if taken.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(takenBody, "Use your own mobile phone number") {
			t.Fatalf("a taken number: %d\n%s", taken.StatusCode, takenBody)
		}
	})
}

// --- Sending and fraud ----------------------------------------------------

// secExample is libphonenumber's example number of a type in a region, in
// E.164, so the tests follow the numbering plan the library knows.
func secExample(t *testing.T, region string, typ phonenumbers.PhoneNumberType) string {
	t.Helper()
	ex := phonenumbers.GetExampleNumberForType(region, typ)
	if ex == nil {
		t.Fatalf("libphonenumber has no example of type %v in %s", typ, region)
	}
	return phonenumbers.Format(ex, phonenumbers.E164)
}

func secNonGeo(t *testing.T, cc int) string {
	t.Helper()
	ex := phonenumbers.GetExampleNumberForNonGeoEntity(cc)
	if ex == nil {
		t.Fatalf("libphonenumber has no example number for +%d", cc)
	}
	return phonenumbers.Format(ex, phonenumbers.E164)
}

func TestSecurityRule11_PhoneNumbersValidatedAndRestricted(t *testing.T) {
	t.Parallel()
	enrolling := func(h *Handler) { h.Phone, h.Enroll = "", true; secManySends(h) }
	// The refusals share handlers that send nothing unless a rule breaks;
	// the numbers accepted go through one of their own.
	jp := htNew(t, nil, enrolling)
	jpfr := htNew(t, nil, func(h *Handler) { enrolling(h); h.AllowCountries = []string{"JP", "FR"} })
	accepting := htNew(t, nil, enrolling)
	for i, tc := range []struct {
		name   string
		number string
		e      *htEnv
	}{
		{"a possible but invalid number (+81 90 0000 0000)", "+81 90 0000 0000", jp},
		{"a possible but invalid number (+81 10 1234 5678)", "+81 10 1234 5678", jp},
		{"a VoIP number (050)", "050-1234-5678", jp},
		{"a premium-rate number", secExample(t, "JP", phonenumbers.PREMIUM_RATE), jp},
		{"a shared-cost number of an allowed country", secExample(t, "FR", phonenumbers.SHARED_COST), jpfr},
		{"a UAN number (0570)", secExample(t, "JP", phonenumbers.UAN), jp},
		{"a pager number (020)", secExample(t, "JP", phonenumbers.PAGER), jp},
		{"a toll-free number (0120)", secExample(t, "JP", phonenumbers.TOLL_FREE), jp},
		{"a non-geographic +882 number", secNonGeo(t, 882), jp},
		{"a non-geographic +881 satellite number", secNonGeo(t, 881), jp},
		{"a non-geographic +883 number", secNonGeo(t, 883), jp},
		{"a mobile number of a country not allowed (+44)", secExample(t, "GB", phonenumbers.MOBILE), jp},
		{"a number of a country not allowed (+1)", "+1 201-555-0123", jp},
		{"a landline", secExample(t, "JP", phonenumbers.FIXED_LINE), jp},
		{"a number with an extension", "090-1234-5678 ext. 12", jp},
	} {
		t.Run("enrolling "+tc.name+" is refused and nothing is sent", func(t *testing.T) {
			t.Parallel()
			b := secBrowser(t, tc.e, fmt.Sprintf("r11-refused-%d", i))
			before := len(tc.e.messages())
			resp, body := enPost(b, "/_stepup/enroll", url.Values{"phone": {tc.number}})
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Use your own mobile phone number") {
				t.Fatalf("enrol %s: %d\n%s", tc.number, resp.StatusCode, body)
			}
			if b.cookie("__Host-stepup_enroll") != "" {
				t.Fatal("the refused number was kept for enrolment")
			}
			enPost(b, "/_stepup/send", url.Values{})
			if n := len(tc.e.messages()); n != before {
				t.Fatalf("%d messages sent after a refused number", n-before)
			}
		})
	}
	for i, tc := range []struct {
		name, typed, e164 string
	}{
		{"a 060 mobile number, which the metadata may not know yet, is accepted as mobile", "060-1234-5678", "+816012345678"},
		{"a national number is normalised to E.164", "090-1234-5678", "+819012345678"},
		{"a number with spaces and the country code is normalised to E.164", "+81 80 1234 5678", "+818012345678"},
		{"full-width digits are normalised to E.164", "０７０-１２３４-５６７８", "+817012345678"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := secBrowser(t, accepting, fmt.Sprintf("r11-ok-%d", i))
			resp, body := enEnrol(t, accepting, b, tc.typed, tc.e164)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("enrol %s: %d\n%s", tc.typed, resp.StatusCode, body)
			}
			if _, n := enCodeTo(t, accepting, tc.e164); n != 1 {
				t.Fatalf("%d codes went to %s, want 1", n, tc.e164)
			}
		})
	}
	t.Run("a possible but invalid number stays refused when allow_numbers lists it", func(t *testing.T) {
		t.Parallel()
		// The allow list lets a refused country or type through, never an
		// invalid number: only IsValidNumber tells +81 90 0000 0000 apart.
		list := filepath.Join(t.TempDir(), "allow.txt")
		if err := os.WriteFile(list, []byte("+819000000000\n+81101234\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		e := htNew(t, nil, func(h *Handler) { enrolling(h); h.AllowNumbers = list })
		for i, n := range []string{"+81 90 0000 0000", "+81 10 1234 5678"} {
			resp, body := enPost(secBrowser(t, e, fmt.Sprintf("r11-listed-%d", i)), "/_stepup/enroll", url.Values{"phone": {n}})
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Use your own mobile phone number") {
				t.Errorf("enrol %s, allow-listed: %d\n%s", n, resp.StatusCode, body)
			}
		}
	})
	t.Run("a VoIP number from the operator's phone placeholder is refused and nothing is sent", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, secPhoneHeader)
		b := secBrowser(t, e, "r11-header")
		w, body := secServe(b, b.request(http.MethodGet, "/_stepup/?r=%2Fsettings", nil, "X-Phone: 050-1234-5678"))
		htWant(t, "the page", w, body, http.StatusForbidden, "There is no phone number on your account that can receive codes")
		if n := len(e.messages()); n != 0 {
			t.Fatalf("%d messages sent", n)
		}
	})
}

func TestSecurityRule12_SendLimits(t *testing.T) {
	t.Parallel()
	two := 2
	limited := func(set func(*LimitsConfig)) func(*Handler) {
		return func(h *Handler) { secManySends(h); set(h.Limits); secPhoneHeader(h) }
	}
	// A send answered 429 by a limit says how long to wait.
	wantLimited := func(t *testing.T, what string, w *httptest.ResponseRecorder, body string) {
		t.Helper()
		htWant(t, what, w, html.UnescapeString(body), http.StatusTooManyRequests, "Too many codes were requested")
		if w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", what)
		}
	}
	wantSent := func(t *testing.T, what string, w *httptest.ResponseRecorder, body string) {
		t.Helper()
		htWant(t, what, w, body, http.StatusSeeOther, "")
	}

	t.Run("the sixth code to one number within the hour is refused, whoever asks", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		for i := 1; i <= 5; i++ {
			w, body := secBrowser(t, e, fmt.Sprintf("r12-phone-%d", i)).postSend()
			wantSent(t, "send", w, body)
		}
		w, body := secBrowser(t, e, "r12-phone-6").postSend()
		wantLimited(t, "the sixth code to one number", w, body)
		if n := len(e.messages()); n != 5 {
			t.Fatalf("%d messages, want 5", n)
		}
	})
	t.Run("the third code for one identity is refused with limits identity 2, resends included", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, secAll(limited(func(l *LimitsConfig) { l.Identity = &two }), func(h *Handler) { h.ResendCooldown = caddyDuration(1) }))
		b := secBrowser(t, e, "r12-identity")
		w, body := secSendTo(b, "192.0.2.20", "+819011110000")
		wantSent(t, "first", w, body)
		e.clock.Add(time.Second)
		w, body = secSendTo(b, "192.0.2.20", "+819011110000")
		wantSent(t, "a resend", w, body)
		e.clock.Add(2 * time.Second)
		w, body = secSendTo(b, "192.0.2.21", "+819022220000")
		wantLimited(t, "the third code for one identity", w, body)
	})
	for _, spoof := range []string{"X-Forwarded-For: 198.51.100.7", "X-Real-IP: 198.51.100.8", "Forwarded: for=198.51.100.9",
		"True-Client-IP: 198.51.100.10", "CF-Connecting-IP: 198.51.100.11"} {
		t.Run("the third code from one client address is refused whatever "+strings.SplitN(spoof, ":", 2)[0]+" says", func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, limited(func(l *LimitsConfig) { l.IP = &two }))
			for i, n := range []string{"+819011110000", "+819022220000"} {
				w, body := secSendTo(secBrowser(t, e, fmt.Sprintf("r12-ip-%d", i)), "192.0.2.30", n, spoof)
				wantSent(t, "send", w, body)
			}
			w, body := secSendTo(secBrowser(t, e, "r12-ip-3"), "192.0.2.30", "+819033330000", spoof)
			wantLimited(t, "the third code from one address", w, body)
			w, body = secSendTo(secBrowser(t, e, "r12-ip-4"), "192.0.2.31", "+819044440000", spoof)
			wantSent(t, "a code from another address (control)", w, body)
		})
	}
	t.Run("an IPv6 client counts by its /64", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, limited(func(l *LimitsConfig) { l.IP = &two }))
		for i, from := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2"} {
			w, body := secSendTo(secBrowser(t, e, fmt.Sprintf("r12-v6-%d", i)), from, fmt.Sprintf("+8190%d1110000", i+1))
			wantSent(t, "send", w, body)
		}
		w, body := secSendTo(secBrowser(t, e, "r12-v6-3"), "2001:db8:1:2:ffff:ffff:ffff:ffff", "+819033330000")
		wantLimited(t, "a third address in the same /64", w, body)
		w, body = secSendTo(secBrowser(t, e, "r12-v6-4"), "2001:db8:1:3::1", "+819044440000")
		wantSent(t, "another /64 (control)", w, body)
	})
	t.Run("the third code to one number prefix (all but the last four digits) is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, limited(func(l *LimitsConfig) { l.Prefix = &two }))
		for i, n := range []string{"+819012340001", "+819012349999"} {
			w, body := secSendTo(secBrowser(t, e, fmt.Sprintf("r12-prefix-%d", i)), fmt.Sprintf("192.0.2.%d", 40+i), n)
			wantSent(t, "send", w, body)
		}
		w, body := secSendTo(secBrowser(t, e, "r12-prefix-3"), "192.0.2.43", "+819012345555")
		wantLimited(t, "a third number of the prefix", w, body)
		w, body = secSendTo(secBrowser(t, e, "r12-prefix-4"), "192.0.2.44", "+819012355555")
		wantSent(t, "another prefix (control)", w, body)
	})
	t.Run("the third code to one country within the hour is refused", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, limited(func(l *LimitsConfig) { l.Country = &two }))
		for i, n := range []string{"+819011110000", "+818022220000"} {
			w, body := secSendTo(secBrowser(t, e, fmt.Sprintf("r12-country-%d", i)), fmt.Sprintf("192.0.2.%d", 50+i), n)
			wantSent(t, "send", w, body)
		}
		w, body := secSendTo(secBrowser(t, e, "r12-country-3"), "192.0.2.53", "+817033330000")
		wantLimited(t, "a third code to the country", w, body)
	})
	t.Run("once the daily budget is spent every send is refused until midnight UTC", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, limited(func(l *LimitsConfig) { l.DailyBudget = &two }))
		for i, n := range []string{"+819011110000", "+818022220000"} {
			w, body := secSendTo(secBrowser(t, e, fmt.Sprintf("r12-budget-%d", i)), fmt.Sprintf("192.0.2.%d", 60+i), n)
			wantSent(t, "send", w, body)
		}
		w, body := secSendTo(secBrowser(t, e, "r12-budget-3"), "192.0.2.63", "+817033330000")
		wantLimited(t, "a send past the daily budget", w, body)
		midnight := e.clock.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		e.clock.Set(midnight.Add(-time.Second))
		w, body = secSendTo(secBrowser(t, e, "r12-budget-4"), "192.0.2.64", "+819044440000")
		wantLimited(t, "a send a second before midnight UTC", w, body)
		e.clock.Set(midnight)
		w, body = secSendTo(secBrowser(t, e, "r12-budget-5"), "192.0.2.65", "+819055550000")
		wantSent(t, "a send at midnight UTC", w, body)
		if n := len(e.messages()); n != 3 {
			t.Fatalf("%d messages reached the gateway, want 3", n)
		}
	})
	t.Run("each resend waits longer than the last", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r12-cooldown")
		b.send()
		for _, wait := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute} {
			e.clock.Add(wait - time.Second)
			w, body := b.postSend()
			htWant(t, fmt.Sprintf("a resend 1s before %s", wait), w, body, http.StatusTooManyRequests, "Please wait 1 seconds")
			e.clock.Add(time.Second)
			w, body = b.postSend()
			wantSent(t, fmt.Sprintf("a resend after %s", wait), w, body)
		}
	})
}

func TestSecurityRule13_ChangingTheNumberNeedsTheOldOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// enrolled is a handler where r13-alice has just enrolled 090-2222-3333
	// (and so stepped up on it).
	enrolled := func(t *testing.T) (*htEnv, *htBrowser) {
		e := htNew(t, nil, func(h *Handler) { h.Phone, h.Enroll = "", true; secManySends(h) })
		b := secBrowser(t, e, "r13-alice")
		if resp, body := enEnrol(t, e, b, "090-2222-3333", "+819022223333"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enrol: %d\n%s", resp.StatusCode, body)
		}
		return e, b
	}
	bound := func(t *testing.T, e *htEnv) string {
		p, err := e.h.service.BoundPhone(ctx, "r13-alice")
		if err != nil {
			t.Fatal(err)
		}
		return p.E164
	}
	// wantNoChange asserts that enrolling 080-4444-5555 now sends the
	// browser to step up on the old number first, and binds nothing.
	wantNoChange := func(t *testing.T, e *htEnv, b *htBrowser) {
		t.Helper()
		w, _ := b.get("/_stepup/change")
		if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/_stepup/?r=%2F_stepup%2Fchange") {
			t.Fatalf("the change page: %d %q, want a step-up first", w.Code, w.Header().Get("Location"))
		}
		resp, _ := enPost(b, "/_stepup/enroll", url.Values{"phone": {"080-4444-5555"}})
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "change") {
			t.Fatalf("a new number: %d %q, want a step-up first", resp.StatusCode, resp.Header.Get("Location"))
		}
		enPost(b, "/_stepup/send", url.Values{})
		if _, n := enCodeTo(t, e, "+818044445555"); n != 0 {
			t.Fatal("a code went to the new number")
		}
		if got := bound(t, e); got != "+819022223333" {
			t.Fatalf("bound number %s, want the old one", got)
		}
	}
	t.Run("a new number without a step-up on the old one is not bound", func(t *testing.T) {
		t.Parallel()
		e, _ := enrolled(t)
		wantNoChange(t, e, secBrowser(t, e, "r13-alice"))
	})
	t.Run("a step-up older than five minutes is not fresh enough", func(t *testing.T) {
		t.Parallel()
		e, b := enrolled(t)
		e.clock.Add(changeFreshness + time.Second)
		wantNoChange(t, e, b)
	})
	t.Run("another identity's fresh step-up cookie does not count", func(t *testing.T) {
		t.Parallel()
		e, _ := enrolled(t)
		mallory := secBrowser(t, e, "r13-mallory")
		if resp, body := enEnrol(t, e, mallory, "090-5555-6666", "+819055556666"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("mallory enrols: %d\n%s", resp.StatusCode, body)
		}
		b := secBrowser(t, e, "r13-alice")
		b.setCookie("__Host-stepup", mallory.cookie("__Host-stepup"))
		wantNoChange(t, e, b)
	})
	t.Run("after a fresh step-up the new number is bound and the old one is told, without a code", func(t *testing.T) {
		t.Parallel()
		e, b := enrolled(t)
		e.clock.Add(time.Minute)
		if resp, body := enEnrol(t, e, b, "080-4444-5555", "+818044445555"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("change: %d\n%s", resp.StatusCode, body)
		}
		if got := bound(t, e); got != "+818044445555" {
			t.Fatalf("bound number %s, want the new one", got)
		}
		var notice []string
		for _, m := range e.messages() {
			if m.To == "+819022223333" && !secCodeRE.MatchString(m.Body) {
				notice = append(notice, m.Body)
			}
		}
		if len(notice) != 1 || !strings.Contains(notice[0], "changed") || regexp.MustCompile(`\d{6}`).MatchString(notice[0]) {
			t.Fatalf("notices to the old number: %q, want one saying it changed, with no code", notice)
		}
	})
	t.Run("after an operator's reset the identity enrols afresh", func(t *testing.T) {
		t.Parallel()
		e, _ := enrolled(t)
		if masked, err := e.h.service.ResetNumber(ctx, "r13-alice"); err != nil || masked != "+81 90-****-3333" {
			t.Fatalf("reset: %q %v", masked, err)
		}
		_, body := secBrowser(t, e, "r13-alice").get("/_stepup/?r=%2Fsettings")
		if !strings.Contains(body, `name="phone"`) {
			t.Fatalf("after the reset the page does not ask for a number:\n%s", body)
		}
	})
	t.Run("a number the operator supplies cannot be replaced by the user", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) { h.Enroll = true })
		b := secBrowser(t, e, "r13-operator")
		b.stepUp()
		resp, body := enPost(b, "/_stepup/enroll", url.Values{"phone": {"080-4444-5555"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("enrol over the operator's number: %d\n%s", resp.StatusCode, body)
		}
	})
}

// --- Tokens and cookies ---------------------------------------------------

// secTokenKey is the HS256 key the handler derives from htKey, so the
// tests can sign tokens with any header and claims.
func secTokenKey(root string) []byte {
	m := hmac.New(sha256.New, []byte(root))
	m.Write([]byte("caddy-sms-stepup/v1/token"))
	return m.Sum(nil)
}

func secB64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secJWT signs header and claims with an HMAC of h under key (no
// signature when h is nil).
func secJWT(h func() hash.Hash, key []byte, header, claims map[string]any) string {
	input := secB64(header) + "." + secB64(claims)
	if h == nil {
		return input + "."
	}
	m := hmac.New(h, key)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// secWith is a copy of m with k set to v, or removed when v is nil.
func secWith(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m))
	for kk, vv := range m {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func secTokenPart(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// secPasses reports whether a browser of user with only this step-up
// cookie reaches the protected page.
func secPasses(t testing.TB, e *htEnv, user, token string) bool {
	b := secBrowser(t, e, user)
	b.setCookie("__Host-stepup", token)
	w, body := b.get("/settings")
	return w.Code == http.StatusOK && body == "next"
}

func TestSecurityRule14_TokensPinnedAndFullyChecked(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := secBrowser(t, e, "r14-alice")
	b.stepUp()
	genuine := b.cookie("__Host-stepup")
	hdr, claims := secTokenPart(t, genuine, 0), secTokenPart(t, genuine, 1)
	if hdr["alg"] != "HS256" || hdr["typ"] != otp.TokenType || hdr["kid"] != e.h.keys.ID {
		t.Fatalf("token header %v: want alg HS256, typ %s, kid %s", hdr, otp.TokenType, e.h.keys.ID)
	}
	for _, c := range []string{"iss", "aud", "sub", "exp", "iat"} {
		if claims[c] == nil {
			t.Errorf("the token does not set %s: %v", c, claims)
		}
	}
	key := secTokenKey(htKey)
	now := e.clock.Now().Unix()
	sig := strings.Split(genuine, ".")[2]
	t.Run("control: a token the test signs with the server's key and the genuine claims passes", func(t *testing.T) {
		if !secPasses(t, e, "r14-alice", secJWT(sha256.New, key, hdr, claims)) {
			t.Fatal("the test's own signature is refused: the hostile cases below would prove nothing")
		}
	})
	otherKey := secTokenKey("another-signing-key-0123456789abcdefghij")
	for _, tc := range []struct{ name, token string }{
		{"alg none without a signature", secJWT(nil, nil, secWith(hdr, "alg", "none"), claims)},
		{"alg none with the genuine signature", secB64(secWith(hdr, "alg", "none")) + "." + secB64(claims) + "." + sig},
		{"alg NONE", secJWT(nil, nil, secWith(hdr, "alg", "NONE"), claims)},
		{"alg HS384 under the server's key", secJWT(sha512.New384, key, secWith(hdr, "alg", "HS384"), claims)},
		{"alg HS512 under the server's key", secJWT(sha512.New, key, secWith(hdr, "alg", "HS512"), claims)},
		{"alg RS256 with an HMAC signature", secJWT(sha256.New, key, secWith(hdr, "alg", "RS256"), claims)},
		{"alg EdDSA with an HMAC signature", secJWT(sha256.New, key, secWith(hdr, "alg", "EdDSA"), claims)},
		{"no alg", secJWT(sha256.New, key, secWith(hdr, "alg", nil), claims)},
		{"no typ", secJWT(sha256.New, key, secWith(hdr, "typ", nil), claims)},
		{"typ JWT", secJWT(sha256.New, key, secWith(hdr, "typ", "JWT"), claims)},
		{"another issuer", secJWT(sha256.New, key, hdr, secWith(claims, "iss", "https://evil.example"))},
		{"no issuer", secJWT(sha256.New, key, hdr, secWith(claims, "iss", nil))},
		{"another audience", secJWT(sha256.New, key, hdr, secWith(claims, "aud", []string{"another-app"}))},
		{"no audience", secJWT(sha256.New, key, hdr, secWith(claims, "aud", nil))},
		{"no subject", secJWT(sha256.New, key, hdr, secWith(claims, "sub", nil))},
		{"no expiry", secJWT(sha256.New, key, hdr, secWith(claims, "exp", nil))},
		{"an expiry in the past", secJWT(sha256.New, key, hdr, secWith(claims, "exp", now-1))},
		{"no issued-at", secJWT(sha256.New, key, hdr, secWith(claims, "iat", nil))},
		{"an issued-at in the future", secJWT(sha256.New, key, hdr, secWith(claims, "iat", now+3600))},
		{"an unknown kid", secJWT(sha256.New, key, secWith(hdr, "kid", "0123456789abcdef"), claims)},
		{"no kid", secJWT(sha256.New, key, secWith(hdr, "kid", nil), claims)},
		{"the right kid under another key", secJWT(sha256.New, otherKey, hdr, claims)},
		{"a later expiry with the genuine signature", secB64(hdr) + "." + secB64(secWith(claims, "exp", now+86400)) + "." + sig},
		{"no signature", secB64(hdr) + "." + secB64(claims) + "."},
	} {
		t.Run("a token with "+tc.name+" is refused", func(t *testing.T) {
			t.Parallel()
			if secPasses(t, e, "r14-alice", tc.token) {
				t.Fatalf("a token with %s, signed with the server's key, reached the protected page: %s", tc.name, tc.token)
			}
		})
	}

	t.Run("an EdDSA deployment refuses HS256 tokens signed with its public key or its old HMAC key", func(t *testing.T) {
		t.Parallel()
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		keyFile := filepath.Join(t.TempDir(), "ed25519.pem")
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		pubDER, _ := x509.MarshalPKIXPublicKey(pub)
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		ed := htNew(t, nil, func(h *Handler) { h.SigningKeyFile = keyFile })
		eb := secBrowser(t, ed, "r14-ed")
		eb.stepUp()
		edToken := eb.cookie("__Host-stepup")
		edHdr, edClaims := secTokenPart(t, edToken, 0), secTokenPart(t, edToken, 1)
		if edHdr["alg"] != "EdDSA" || !secPasses(t, ed, "r14-ed", edToken) {
			t.Fatalf("the EdDSA deployment's own token %v does not pass", edHdr)
		}
		hs := secWith(edHdr, "alg", "HS256")
		for name, token := range map[string]string{
			"HS256 under the raw public key":   secJWT(sha256.New, pub, hs, edClaims),
			"HS256 under the public key's PEM": secJWT(sha256.New, pubPEM, hs, edClaims),
			"HS256 under the signing_key's HMAC key, with its kid": secJWT(sha256.New, key,
				map[string]any{"alg": "HS256", "typ": otp.TokenType, "kid": e.h.keys.ID}, edClaims),
			"alg none": secJWT(nil, nil, secWith(edHdr, "alg", "none"), edClaims),
		} {
			if secPasses(t, ed, "r14-ed", token) {
				t.Errorf("an EdDSA deployment took a token with %s", name)
			}
		}
	})
	t.Run("kid lets keys rotate: a retired key's token passes while listed in previous_keys, and not after", func(t *testing.T) {
		t.Parallel()
		const newKey = "rotated-signing-key-0123456789abcdefghijkl"
		rotated := htNew(t, e.clock, func(h *Handler) { h.SigningKey, h.PreviousKeys = newKey, []string{htKey} })
		dropped := htNew(t, e.clock, func(h *Handler) { h.SigningKey = newKey })
		if !secPasses(t, rotated, "r14-alice", genuine) {
			t.Error("a token of the retired key is refused while previous_keys lists it")
		}
		if secPasses(t, dropped, "r14-alice", genuine) {
			t.Error("a token of a key no longer listed passes")
		}
	})
}

func TestSecurityRule15_TokenBoundToIdentityAndSessionOnEveryRequest(t *testing.T) {
	t.Parallel()
	t.Run("identity B presenting A's cookie must step up", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		a := secBrowser(t, e, "r15-alice")
		a.stepUp()
		b := secBrowser(t, e, "r15-bob")
		b.setCookie("__Host-stepup", a.cookie("__Host-stepup"))
		b.wantStepUp("B with A's cookie")
	})
	t.Run("after the application session changes the cookie no longer passes, and passes again in its own session", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) { h.Session = "{http.request.cookie.app_session}" })
		b := secBrowser(t, e, "r15-session")
		b.setCookie("app_session", "session-A")
		b.stepUp()
		b.wantPass("in session A")
		b.setCookie("app_session", "session-B")
		b.wantStepUp("in session B")
		b.jar.SetCookies(htBase, []*http.Cookie{{Name: "app_session", Path: "/", MaxAge: -1}})
		// No session is no step-up at all (rule 29), not a step-up bound to none.
		before := e.next.Load()
		if w, _ := b.get("/settings"); w.Code != http.StatusUnauthorized || e.next.Load() != before {
			t.Fatalf("with no application session: /settings answered %d, want 401", w.Code)
		}
		b.setCookie("app_session", "session-A")
		b.wantPass("back in session A")
	})
	t.Run("a cookie checked once is checked again on every request", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		a := secBrowser(t, e, "r15-cache")
		a.stepUp()
		a.wantPass("first request")
		b := secBrowser(t, e, "r15-other")
		b.setCookie("__Host-stepup", a.cookie("__Host-stepup"))
		b.wantStepUp("another identity after the token was cached")
		a.wantPass("its own identity again")
	})
	t.Run("an operator's revocation refuses cookies made before it, and a fresh step-up passes", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r15-revoked")
		b.stepUp()
		b.wantPass("before the revocation")
		e.clock.Add(time.Second)
		// In the store, as `caddy sms-stepup revoke` or another instance
		// does it: this instance learns of it within the refresh interval.
		if err := e.h.store.Revoke(context.Background(), "r15-revoked", e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(otp.DefaultRevocationRefresh + time.Second)
		b.wantStepUp("after the revocation reached this instance")
		b.stepUp()
		b.wantPass("after a fresh step-up")
	})
}

// secSetCookies are the cookies of a response by name.
func secSetCookies(w *httptest.ResponseRecorder) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range w.Result().Cookies() {
		out[c.Name] = c
	}
	return out
}

func TestSecurityRule16_CookieAttributes(t *testing.T) {
	t.Parallel()
	// flow steps up over requests changed by adjust, and returns the
	// responses of the page, the send and the verify.
	flow := func(t *testing.T, e *htEnv, user string, adjust func(*http.Request) *http.Request) (page, send, verify *httptest.ResponseRecorder) {
		t.Helper()
		b := secBrowser(t, e, user)
		page, body := secServe(b, adjust(b.request(http.MethodGet, "/_stepup/?r=%2Fsettings", nil)))
		csrf := ""
		for _, m := range htFieldRE.FindAllStringSubmatch(body, -1) {
			if m[1] == "csrf" {
				csrf = html.UnescapeString(m[2])
			}
		}
		send, _ = secServe(b, adjust(b.request(http.MethodPost, "/_stepup/send", url.Values{"csrf": {csrf}, "r": {"/settings"}})))
		verify, body = secServe(b, adjust(b.request(http.MethodPost, "/_stepup/verify", url.Values{"csrf": {csrf}, "r": {"/settings"}, "code": {secLastCode(t, e)}})))
		if verify.Code != http.StatusSeeOther {
			t.Fatalf("verify: %d\n%s", verify.Code, body)
		}
		return page, send, verify
	}
	same := func(r *http.Request) *http.Request { return r }
	check := func(t *testing.T, c *http.Cookie, name string, secure bool, sameSite http.SameSite, maxAge int) {
		t.Helper()
		switch {
		case c == nil:
			t.Fatalf("no %s cookie", name)
		case c.Secure != secure, !c.HttpOnly, c.SameSite != sameSite, c.Path != "/", c.Domain != "", c.MaxAge != maxAge:
			t.Errorf("cookie %q: want Secure=%t, HttpOnly, SameSite=%v, Path=/, no Domain, Max-Age=%d", c.Raw, secure, sameSite, maxAge)
		}
	}
	t.Run("over HTTPS the step-up cookie is __Host-, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, Max-Age the token lifetime", func(t *testing.T) {
		t.Parallel()
		for ttl, maxAge := range map[time.Duration]int{0: 900, 10 * time.Minute: 600} {
			e := htNew(t, nil, func(h *Handler) { h.TokenTTL = caddy.Duration(ttl) })
			_, _, verify := flow(t, e, "r16-https", same)
			check(t, secSetCookies(verify)["__Host-stepup"], "__Host-stepup", true, http.SameSiteLaxMode, maxAge)
		}
	})
	t.Run("over HTTPS the CSRF and challenge cookies are __Host-, Secure, HttpOnly, SameSite=Strict", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		page, send, _ := flow(t, e, "r16-others", same)
		check(t, secSetCookies(page)["__Host-stepup_csrf"], "__Host-stepup_csrf", true, http.SameSiteStrictMode, 0)
		check(t, secSetCookies(send)["__Host-stepup_challenge"], "__Host-stepup_challenge", true, http.SameSiteStrictMode, 300)
	})
	t.Run("a step-up cookie without the __Host- prefix is ignored over HTTPS", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		a := secBrowser(t, e, "r16-prefix")
		a.stepUp()
		b := secBrowser(t, e, "r16-prefix")
		b.setCookie("stepup", a.cookie("__Host-stepup"))
		b.wantStepUp("with the token under the plain name")
	})
	t.Run("plain HTTP to a public host keeps Secure and the __Host- prefix", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		plain := func(r *http.Request) *http.Request { r.TLS = nil; return r }
		_, _, verify := flow(t, e, "r16-plain", plain)
		check(t, secSetCookies(verify)["__Host-stepup"], "__Host-stepup", true, http.SameSiteLaxMode, 900)
	})
	t.Run("plain HTTP on loopback drops Secure and the prefix, and says so once", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		core, logs := observer.New(zap.WarnLevel)
		e.h.logger = zap.New(core)
		loopback := func(r *http.Request) *http.Request { r.TLS, r.Host = nil, "localhost:8080"; return r }
		_, _, verify := flow(t, e, "r16-dev", loopback)
		cookies := secSetCookies(verify)
		if cookies["__Host-stepup"] != nil {
			t.Fatal("a __Host- cookie over plain HTTP would be dropped by the browser")
		}
		check(t, cookies["stepup"], "stepup", false, http.SameSiteLaxMode, 900)
		if n := logs.FilterMessageSnippet("development only").Len(); n != 1 {
			t.Fatalf("%d warnings that the cookies are for development, want 1", n)
		}
	})
}

func TestSecurityRule17_TokenLifetimeAndMaxAge(t *testing.T) {
	t.Parallel()
	t.Run("a step-up passes until 15 minutes and not one second after", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r17-default")
		b.stepUp()
		e.clock.Add(15*time.Minute - time.Second)
		b.wantPass("at 14m59s")
		e.clock.Add(2 * time.Second)
		b.wantStepUp("at 15m1s")
	})
	t.Run("with token_ttl 10m a step-up lapses after 10 minutes", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) { h.TokenTTL = caddy.Duration(10 * time.Minute) })
		b := secBrowser(t, e, "r17-ten")
		b.stepUp()
		e.clock.Add(10*time.Minute - time.Second)
		b.wantPass("at 9m59s")
		e.clock.Add(2 * time.Second)
		b.wantStepUp("at 10m1s")
	})
	t.Run("a route with max_age 5m refuses a six-minute-old step-up that a lenient route takes", func(t *testing.T) {
		t.Parallel()
		clock := htNewClock()
		lenient := htNew(t, clock, nil)
		strict := htNew(t, clock, func(h *Handler) { h.MaxAge = caddy.Duration(5 * time.Minute) })
		b := secBrowser(t, lenient, "r17-strict")
		b.stepUp()
		s := secBrowser(t, strict, "r17-strict")
		s.setCookie("__Host-stepup", b.cookie("__Host-stepup"))
		clock.Add(6 * time.Minute)
		b.wantPass("lenient route at 6m")
		s.wantStepUp("strict route at 6m")
	})
	t.Run("token_ttl 25h is a config error", func(t *testing.T) {
		t.Parallel()
		secConfigRefused(t, "token_ttl 25h", func(h *Handler) { h.TokenTTL = caddy.Duration(25 * time.Hour) }, "token_ttl")
	})
	t.Run("max_age longer than token_ttl is a config error", func(t *testing.T) {
		t.Parallel()
		err := secProvision(t, func(h *Handler) {
			h.TokenTTL, h.MaxAge = caddy.Duration(10*time.Minute), caddy.Duration(20*time.Minute)
		})
		if err == nil || !strings.Contains(err.Error(), "max_age") {
			t.Fatalf("max_age 20m with token_ttl 10m: %v", err)
		}
	})
}

func TestSecurityRule18_JSONClientsGet401NeverARedirect(t *testing.T) {
	t.Parallel()
	want401 := func(t *testing.T, what string, w *httptest.ResponseRecorder, body, maxAge string) {
		t.Helper()
		if w.Code != http.StatusUnauthorized || w.Header().Get("Location") != "" {
			t.Fatalf("%s: %d, Location %q; want 401 and no redirect", what, w.Code, w.Header().Get("Location"))
		}
		wa := w.Header().Get("WWW-Authenticate")
		if !strings.HasPrefix(wa, `Bearer error="insufficient_user_authentication"`) || !strings.Contains(wa, `max_age="`+maxAge+`"`) {
			t.Errorf("%s: WWW-Authenticate %q, want the RFC 9470 challenge with max_age=%q", what, wa, maxAge)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["error"] != "insufficient_user_authentication" {
			t.Errorf("%s: body %q, want JSON naming the error", what, body)
		}
	}
	e := htNew(t, nil, nil)
	for _, h := range []string{"Accept: application/json", "X-Requested-With: XMLHttpRequest", "Sec-Fetch-Mode: cors", "Sec-Fetch-Mode: same-origin"} {
		t.Run("a client sending "+h+" gets 401 with the challenge", func(t *testing.T) {
			t.Parallel()
			w, body := secBrowser(t, e, "r18-header").get("/settings", h)
			want401(t, h, w, body, "900")
		})
	}
	t.Run("a JSON POST to a protected route gets 401 with the challenge", func(t *testing.T) {
		t.Parallel()
		b := secBrowser(t, e, "r18-post")
		w, body := b.do(http.MethodPost, "/settings/email", nil, "Accept: application/json", "Content-Type: application/json")
		want401(t, "JSON POST", w, body, "900")
	})
	t.Run("a JSON client whose step-up has expired gets 401 with the challenge", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r18-expired")
		b.stepUp()
		e.clock.Add(16 * time.Minute)
		w, body := b.get("/settings", "Accept: application/json")
		want401(t, "expired step-up", w, body, "900")
	})
	t.Run("a route with max_age 5m says max_age=300", func(t *testing.T) {
		t.Parallel()
		strict := htNew(t, nil, func(h *Handler) { h.MaxAge = caddy.Duration(5 * time.Minute) })
		w, body := secBrowser(t, strict, "r18-strict").get("/settings", "Accept: application/json")
		want401(t, "strict route", w, body, "300")
	})
	t.Run("control: a browser navigating, with JSON only as a fallback, is redirected", func(t *testing.T) {
		t.Parallel()
		secBrowser(t, e, "r18-browser").wantStepUp("browser")
		b := secBrowser(t, e, "r18-browser")
		w, _ := b.get("/settings", "Accept: text/html,application/xhtml+xml,application/json;q=0.9")
		if w.Code != http.StatusSeeOther {
			t.Fatalf("browser: %d, want 303", w.Code)
		}
	})
}

// --- Requests -------------------------------------------------------------

func TestSecurityRule19_ReturnPathSameSiteOnly(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct{ name, raw string }{
		{"//x", "//evil.example/settings"},
		{"///x", "///evil.example"},
		{`/\x`, `/\evil.example`},
		{`\\x`, `\\evil.example`},
		{"https:x", "https:evil.example"},
		{"https://x", "https://evil.example/settings"},
		{"%2F%2Fx", "%2F%2Fevil.example"},
		{"/%2F%2Fx", "/%2F%2Fevil.example"},
		{"/%2fx", "/%2fevil.example"},
		{"/%5Cx", "/%5Cevil.example"},
		{"javascript:", "javascript:alert('evil')"},
		{"raw CR/LF", "/settings\r\nSet-Cookie: evil=1"},
		{"encoded CR/LF", "/settings%0d%0aSet-Cookie:%20evil=1"},
		{"a tab", "/\t/evil.example"},
		{"no leading slash", "evil.example/settings"},
		{"a leading space", " /evil.example"},
	} {
		t.Run("return path "+tc.name+" becomes /", func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, nil)
			b := secBrowser(t, e, fmt.Sprintf("r19-%d", i))
			w, body := b.get("/_stepup/?r=" + url.QueryEscape(tc.raw))
			htWant(t, "the page", w, body, http.StatusOK, "")
			for _, m := range htFieldRE.FindAllStringSubmatch(body, -1) {
				if m[1] == "r" && m[2] != "/" {
					t.Errorf("hidden r %q, want /", m[2])
				}
			}
			if strings.Contains(html.UnescapeString(body), "evil") {
				t.Error("the page carries the hostile return path")
			}
			code := b.send()
			w, body = b.do(http.MethodPost, "/_stepup/verify", url.Values{"csrf": {b.csrf()}, "r": {tc.raw}, "code": {code}})
			htWant(t, "verify", w, body, http.StatusSeeOther, "")
			if loc := w.Header().Get("Location"); loc != "/" {
				t.Errorf("verify sent the browser to %q, want /", loc)
			}
			for k := range w.Header() {
				if k != "Location" && k != "Set-Cookie" && k != "Cache-Control" && k != "Content-Type" {
					t.Errorf("verify answered with a header %s", k)
				}
			}
			for _, c := range w.Result().Cookies() {
				if !strings.HasPrefix(c.Name, "__Host-stepup") {
					t.Errorf("verify set a cookie %q", c.Name)
				}
			}
		})
	}
	t.Run("a form posted to a protected page from another site's page returns to /", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		w, _ := secBrowser(t, e, "r19-referer").do(http.MethodPost, "/settings/email", url.Values{"email": {"x"}}, "Referer: https://evil.example/settings")
		if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || loc != "/_stepup/?r=%2F&n=resubmit" {
			t.Fatalf("%d %q, want a 303 to the step-up page returning to /", w.Code, loc)
		}
	})
	t.Run("control: a same-site path with a query is kept", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r19-ok")
		code := b.send()
		w, _ := b.do(http.MethodPost, "/_stepup/verify", url.Values{"csrf": {b.csrf()}, "r": {"/account?tab=phone"}, "code": {code}})
		if loc := w.Header().Get("Location"); loc != "/account?tab=phone" {
			t.Fatalf("Location %q", loc)
		}
	})
}

func TestSecurityRule20_CSRFAndOriginOnEveryPost(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, func(h *Handler) { h.Session = "{http.request.cookie.app_session}" })
	const user = "r20-alice"
	inSession := func(b *htBrowser, s string) *htBrowser { b.setCookie("app_session", s); return b }
	alice := inSession(secBrowser(t, e, user), "session-A")
	code := alice.send()
	token := alice.csrf()
	challenge := alice.cookie("__Host-stepup_challenge")
	mallory := inSession(secBrowser(t, e, "r20-mallory"), "session-A")
	malloryToken := mallory.csrf()
	inB := inSession(secBrowser(t, e, user), "session-B")
	tokenB := inB.csrf()
	flipped := []byte(token)
	flipped[3] ^= 1
	if flipped[3] == '-' || flipped[3] == '_' {
		flipped[3] = 'A'
	}

	// withCookiesOf is alice's session with another browser's CSRF nonce.
	withCookiesOf := func(from *htBrowser) *htBrowser {
		b := inSession(secBrowser(t, e, user), "session-A")
		b.setCookie("__Host-stepup_challenge", challenge)
		b.setCookie("__Host-stepup_csrf", from.cookie("__Host-stepup_csrf"))
		return b
	}
	endpoints := []string{"/_stepup/send", "/_stepup/verify", "/_stepup/call", "/_stepup/enroll", "/_stepup/api/send", "/_stepup/api/verify", "/_stepup/api/call", "/_stepup/api/enroll"}
	post := func(t *testing.T, b *htBrowser, path, token string, extra ...string) *httptest.ResponseRecorder {
		var r *http.Request
		if strings.Contains(path, "/api/") {
			body := `{"code":"` + code + `","r":"/settings"}`
			r = b.request(http.MethodPost, path, nil, append([]string{"Content-Type: application/json", "X-CSRF-Token: " + token}, extra...)...)
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
		} else {
			form := url.Values{"r": {"/settings"}, "code": {code}, "phone": {"080-4444-5555"}}
			if token != "" {
				form.Set("csrf", token)
			}
			r = b.request(http.MethodPost, path, form, extra...)
		}
		w := httptest.NewRecorder()
		if err := e.h.ServeHTTP(w, r, secNext(e)); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		return w
	}
	for _, tc := range []struct {
		name    string
		browser *htBrowser
		token   string
		extra   []string
	}{
		{"no token", alice, "", nil},
		{"a wrong token", alice, string(flipped), nil},
		{"another identity's token and nonce", withCookiesOf(mallory), malloryToken, nil},
		{"a token without its nonce cookie", func() *htBrowser {
			b := inSession(secBrowser(t, e, user), "session-A")
			b.setCookie("__Host-stepup_challenge", challenge)
			return b
		}(), token, nil},
		{"another session's token and nonce", withCookiesOf(inB), tokenB, nil},
		{"the right token from a cross-site Origin", alice, token, []string{"Origin: https://evil.example"}},
		{"the right token from a sibling subdomain's Origin", alice, token, []string{"Origin: https://app.example.com"}},
		{"the right token with Origin null and no Sec-Fetch-Site", alice, token, []string{"Origin: null"}},
		{"the right token with Origin null from a same-site page", alice, token, []string{"Origin: null", "Sec-Fetch-Site: same-site"}},
		{"the right token with no Origin from a cross-site fetch", alice, token, []string{"Sec-Fetch-Site: cross-site"}},
	} {
		// One after the other: each checks that nothing changed.
		t.Run("every POST endpoint refuses "+tc.name+" and changes nothing", func(t *testing.T) {
			sent := len(e.messages())
			for _, path := range endpoints {
				w := post(t, tc.browser, path, tc.token, tc.extra...)
				body := html.UnescapeString(w.Body.String())
				if w.Code != http.StatusForbidden || !(strings.Contains(body, "This form has expired") || strings.Contains(body, `"error":"csrf"`)) {
					t.Errorf("POST %s: %d, want 403 for the CSRF check:\n%s", path, w.Code, body)
				}
				if strings.Contains(strings.Join(w.Header().Values("Set-Cookie"), "\n"), "__Host-stepup=") {
					t.Errorf("POST %s set a step-up cookie", path)
				}
			}
			if n := len(e.messages()); n != sent {
				t.Errorf("%d messages sent", n-sent)
			}
			c, err := e.h.store.Challenge(context.Background(), user, challenge, e.clock.Now())
			if err != nil || c.Attempts != 0 {
				t.Errorf("the challenge after refused posts: %+v %v, want it live with no attempt counted", c, err)
			}
		})
	}
	t.Run("control: the right token from this site's Origin verifies", func(t *testing.T) {
		w := post(t, alice, "/_stepup/verify", token, "Origin: https://example.com")
		if w.Code != http.StatusSeeOther {
			t.Fatalf("%d\n%s", w.Code, w.Body.String())
		}
	})
}

func TestSecurityRule21_ClientCannotForgeStepupHeaders(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	const user = "r21-alice"
	stepped := secBrowser(t, e, user)
	stepped.stepUp()
	// upstream serves path with the forged headers and returns what the
	// next handler (the upstream's proxy) saw: X-Stepup-* headers and the
	// step-up placeholders.
	upstream := func(t *testing.T, b *htBrowser, path string, forged map[string][]string) (hdrs map[string][]string, ph map[string]string) {
		t.Helper()
		r := b.request(http.MethodGet, path, nil)
		for k, v := range forged {
			r.Header[k] = v
		}
		reached := false
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			reached = true
			hdrs = map[string][]string{}
			for k, v := range r.Header {
				if strings.HasPrefix(strings.ToLower(k), "x-stepup-") {
					hdrs[k] = v
				}
			}
			repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			ph = map[string]string{}
			for _, p := range []string{phIdentity, phVerifiedAt, phAuthTime, phToken} {
				ph[p] = repl.ReplaceAll("{"+p+"}", "")
			}
			return nil
		})
		if err := e.h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil || !reached {
			t.Fatalf("GET %s: err %v, reached the upstream %t", path, err, reached)
		}
		return hdrs, ph
	}
	own := map[string]bool{"X-Stepup-Identity": true, "X-Stepup-Verified-At": true, "X-Stepup-Auth-Time": true}
	for _, tc := range []struct {
		name   string
		forged map[string][]string
	}{
		{"X-Stepup-Identity", map[string][]string{"X-Stepup-Identity": {"mallory"}}},
		{"a lower-case x-stepup-identity", map[string][]string{"x-stepup-identity": {"mallory"}}},
		{"two X-Stepup-Identity values", map[string][]string{"X-Stepup-Identity": {user, "mallory"}}},
		{"a mixed-case X-STEPUP-Verified-At", map[string][]string{"X-STEPUP-Verified-At": {"2099-01-01T00:00:00Z"}}},
		{"X-Stepup-Auth-Time", map[string][]string{"X-Stepup-Auth-Time": {"4102444800"}}},
		{"X-Stepup-Token", map[string][]string{"X-Stepup-Token": {"forged.token.value"}}},
		{"an invented X-Stepup-Admin", map[string][]string{"X-Stepup-Admin": {"true"}}},
	} {
		var forgedValues []string
		for _, vs := range tc.forged {
			for _, v := range vs {
				if v != user {
					forgedValues = append(forgedValues, v)
				}
			}
		}
		check := func(t *testing.T, hdrs map[string][]string, wantOwn bool) {
			t.Helper()
			for k, vs := range hdrs {
				if !wantOwn || !own[k] {
					t.Errorf("the upstream got %s: %q", k, vs)
					continue
				}
				if len(vs) != 1 || (k == "X-Stepup-Identity" && vs[0] != user) || secContainsAny(vs, forgedValues) {
					t.Errorf("the upstream got %s: %q", k, vs)
				}
			}
		}
		t.Run("a forged "+tc.name+" never reaches the upstream behind a valid step-up", func(t *testing.T) {
			t.Parallel()
			hdrs, ph := upstream(t, stepped, "/settings", tc.forged)
			check(t, hdrs, true)
			if ph[phIdentity] != user || secContainsAny([]string{ph[phVerifiedAt], ph[phAuthTime], ph[phToken]}, forgedValues) {
				t.Errorf("placeholders %v", ph)
			}
		})
		t.Run("a forged "+tc.name+" never reaches the upstream of an unprotected route", func(t *testing.T) {
			t.Parallel()
			hdrs, ph := upstream(t, secBrowser(t, e, "r21-anyone"), "/public", tc.forged)
			check(t, hdrs, false)
			for k, v := range ph {
				if v != "" {
					t.Errorf("placeholder %s is %q on an unprotected route", k, v)
				}
			}
		})
	}
}

func secContainsAny(have, wanted []string) bool {
	for _, h := range have {
		for _, a := range wanted {
			if h == a {
				return true
			}
		}
	}
	return false
}

var (
	secNonceRE  = regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`)
	secTagRE    = regexp.MustCompile(`<(script|style)\b[^>]*>`)
	secInlineRE = regexp.MustCompile(`<[^>]*\son[a-z]+\s*=`)
	secURLRE    = regexp.MustCompile(`(?:href|action|src|formaction)="([^"]*)"`)
)

// secCheckPage asserts the headers and script rules every page keeps.
func secCheckPage(t *testing.T, what string, w *httptest.ResponseRecorder, body string) {
	t.Helper()
	h := w.Header()
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("%s: Content-Type %q, not a page", what, h.Get("Content-Type"))
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("%s: Cache-Control %q, Referrer-Policy %q", what, h.Get("Cache-Control"), h.Get("Referrer-Policy"))
	}
	csp := h.Get("Content-Security-Policy")
	m := secNonceRE.FindStringSubmatch(csp)
	if m == nil || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
		t.Errorf("%s: Content-Security-Policy %q", what, csp)
		return
	}
	for _, tag := range secTagRE.FindAllString(body, -1) {
		if !strings.Contains(tag, `nonce="`+m[1]+`"`) {
			t.Errorf("%s: %s without the response's nonce", what, tag)
		}
	}
	if s := secInlineRE.FindString(body); s != "" {
		t.Errorf("%s: an inline event handler: %s", what, s)
	}
	if strings.Contains(body, "javascript:") {
		t.Errorf("%s: a javascript: URL", what)
	}
}

func TestSecurityRule22_PageHeadersAndNoSecretsInURLs(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, secManySends)
	for _, tc := range []struct {
		name      string
		configure func(*Handler)
		get       func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string)
	}{
		{"the send page", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			return secBrowser(t, e, "r22-send").get("/_stepup/?r=%2Fsettings")
		}},
		{"the code page", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			b := secBrowser(t, e, "r22-code")
			b.send()
			return b.get("/_stepup/?r=%2Fsettings&m=sent")
		}},
		{"a wrong-code page", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			b := secBrowser(t, e, "r22-wrong")
			return b.verify(htWrong(b.send()))
		}},
		{"a cooldown page", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			b := secBrowser(t, e, "r22-cooldown")
			b.send()
			return b.postSend()
		}},
		{"the locked page", func(h *Handler) { h.FailureBudget = 1 }, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			b := secBrowser(t, e, "r22-locked")
			return b.verify(htWrong(b.send()))
		}},
		{"the CSRF error page", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			return secBrowser(t, e, "r22-csrf").do(http.MethodPost, "/_stepup/send", url.Values{"r": {"/settings"}})
		}},
		{"the not-found page", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			return secBrowser(t, e, "r22-404").get("/_stepup/nothing-here")
		}},
		{"the method-not-allowed page", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			return secBrowser(t, e, "r22-405").do(http.MethodDelete, "/_stepup/", nil)
		}},
		{"the sign-in page for a request without identity", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			return secBrowser(t, e, "").get("/settings")
		}},
		{"the unavailable page", nil, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			e.store.down.Store(true)
			return secBrowser(t, e, "r22-down").get("/_stepup/?r=%2Fsettings")
		}},
		{"the enrolment page", func(h *Handler) { h.Phone, h.Enroll = "", true }, func(t *testing.T, e *htEnv) (*httptest.ResponseRecorder, string) {
			return secBrowser(t, e, "r22-enrol").get("/_stepup/?r=%2Fsettings")
		}},
	} {
		t.Run(tc.name+" carries no-store, no-referrer and a strict CSP with nonces", func(t *testing.T) {
			t.Parallel()
			w, body := tc.get(t, htNew(t, nil, tc.configure))
			secCheckPage(t, tc.name, w, body)
		})
	}
	t.Run("the redirect to the step-up page is not cached", func(t *testing.T) {
		t.Parallel()
		w, _ := secBrowser(t, e, "r22-redirect").get("/settings")
		if w.Code != http.StatusSeeOther || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%d, Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
		}
	})
	t.Run("no URL of a whole flow carries the code or the step-up token", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		b := secBrowser(t, e, "r22-urls")
		var urls []string
		collect := func(w *httptest.ResponseRecorder, body string) {
			urls = append(urls, w.Header().Get("Location"))
			for _, m := range secURLRE.FindAllStringSubmatch(body, -1) {
				urls = append(urls, html.UnescapeString(m[1]))
			}
		}
		collect(b.get("/settings"))
		collect(b.get("/_stepup/?r=%2Fsettings"))
		w, body := b.postSend()
		collect(w, body)
		code := secLastCode(t, e)
		collect(b.get(w.Header().Get("Location")))
		collect(b.verify(htWrong(code)))
		w, body = b.verify(code)
		collect(w, body)
		collect(b.get("/settings"))
		token := b.cookie("__Host-stepup")
		if token == "" {
			t.Fatal("no step-up")
		}
		for _, u := range urls {
			if secHasCode(u, code) || strings.Contains(u, token) {
				t.Errorf("a URL carries the code or the token: %q", u)
			}
		}
	})
	for _, tc := range []struct{ name, target string }{
		{"the verify URL", "/_stepup/verify?r=%2Fsettings&code="},
		{"the page's URL", "/_stepup/?r=%2Fsettings&code="},
		{"the send URL", "/_stepup/send?r=%2Fsettings&code="},
	} {
		t.Run("a code put in "+tc.name+" of a GET is not taken", func(t *testing.T) {
			t.Parallel()
			e := htNew(t, nil, nil)
			b := secBrowser(t, e, "r22-get")
			code := b.send()
			sent := len(e.messages())
			w, body := b.get(tc.target + code)
			if w.Code != http.StatusSeeOther && w.Code != http.StatusOK {
				t.Fatalf("GET %s: %d\n%s", tc.target, w.Code, body)
			}
			if secHasCode(w.Header().Get("Location"), code) || b.cookie("__Host-stepup") != "" || len(e.messages()) != sent {
				t.Fatalf("GET %s: Location %q, a step-up cookie or a message", tc.target, w.Header().Get("Location"))
			}
			c, err := e.h.store.Challenge(context.Background(), b.user, b.cookie("__Host-stepup_challenge"), e.clock.Now())
			if err != nil || c.Attempts != 0 {
				t.Fatalf("the challenge after the GET: %+v %v, want it live and untouched", c, err)
			}
		})
	}
}

// --- Logs and failure -----------------------------------------------------

// secSink is a zap WriteSyncer over a shared buffer.
type secSink struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (s secSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s secSink) Sync() error { return nil }

// secLogs captures what the handler logs, as Caddy's JSON and console
// encoders write it and as structured entries.
type secLogs struct {
	mu      sync.Mutex
	json    bytes.Buffer
	console bytes.Buffer
	entries *observer.ObservedLogs
}

func secCaptureLogs(e *htEnv) *secLogs {
	l := &secLogs{}
	cfg := zap.NewProductionEncoderConfig()
	// No timestamps: a clock's digits must not pass for a code.
	cfg.TimeKey = ""
	cfg.EncodeDuration = zapcore.StringDurationEncoder
	cfg.EncodeTime = zapcore.RFC3339TimeEncoder
	obs, entries := observer.New(zap.DebugLevel)
	l.entries = entries
	e.h.logger = zap.New(zapcore.NewTee(
		zapcore.NewCore(zapcore.NewJSONEncoder(cfg), secSink{&l.mu, &l.json}, zap.DebugLevel),
		zapcore.NewCore(zapcore.NewConsoleEncoder(cfg), secSink{&l.mu, &l.console}, zap.DebugLevel),
		obs,
	))
	return l
}

func (l *secLogs) text() (jsonText, consoleText string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.json.String(), l.console.String()
}

func TestSecurityRule23_LogsHoldNoCodeNoNumberAndEscapeClientInput(t *testing.T) {
	t.Parallel()
	const hostile = "mal\r\nlory\x1b[31m level=error msg=\"forged\""
	const hostilePath = "/settings\r\nX-Forged: 1\x1b[2J"
	e := htNew(t, nil, func(h *Handler) { h.Phone, h.Enroll = "", true; secManySends(h) })
	logs := secCaptureLogs(e)

	// A whole flow: a request without identity on a hostile path, two
	// numbers the policy refuses, an enrolment with a cooldown hit and a
	// wrong code, and a lock-out after ten more wrong codes.
	if w, _ := secBrowser(t, e, "").get("/settings%0d%0aX-Forged:%201%1b[2J"); w.Code != http.StatusUnauthorized {
		t.Fatalf("no identity: %d", w.Code)
	}
	b := secBrowser(t, e, hostile)
	for _, n := range []string{"050-1234-5678", "+690 7290"} {
		if resp, body := enPost(b, "/_stepup/enroll", url.Values{"phone": {n}}); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("enrol %s: %d\n%s", n, resp.StatusCode, body)
		}
	}
	enPost(b, "/_stepup/enroll", url.Values{"phone": {"090-2222-3333"}})
	enPost(b, "/_stepup/send", url.Values{})
	code, _ := enCodeTo(t, e, "+819022223333")
	if resp, _ := enPost(b, "/_stepup/send", url.Values{}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("an immediate resend: %d, want a cooldown", resp.StatusCode)
	}
	enPost(b, "/_stepup/verify", url.Values{"code": {htWrong(code)}})
	if resp, body := enPost(b, "/_stepup/verify", url.Values{"code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify: %d\n%s", resp.StatusCode, body)
	}
	for i := 0; i < 10; {
		w, _ := b.postSend()
		if w.Code != http.StatusSeeOther {
			e.clock.Add(30 * time.Second)
			continue
		}
		c := secLastCode(t, e)
		for ; i < 10; i++ {
			w, body := b.verify(htWrong(c))
			if w.Code == http.StatusTooManyRequests {
				i = 10
				break
			}
			if strings.Contains(body, "can no longer be used") {
				i++
				break
			}
		}
	}
	if w, _ := b.postSend(); w.Code != http.StatusTooManyRequests {
		t.Fatalf("a send while locked: %d", w.Code)
	}
	jsonText, consoleText := logs.text()
	entries := logs.entries.All()
	if len(entries) == 0 {
		t.Fatal("nothing was logged")
	}

	t.Run("no code that was sent appears in any log line", func(t *testing.T) {
		codes := 0
		for _, m := range e.messages() {
			if c := secCodeRE.FindStringSubmatch(m.Body); c != nil {
				codes++
				if secHasCode(jsonText, c[1]) || secHasCode(consoleText, c[1]) {
					t.Errorf("the log holds the code %s", c[1])
				}
			}
		}
		if codes < 3 {
			t.Fatalf("only %d codes were sent; the flow did not run", codes)
		}
	})
	for _, n := range []string{"+819022223333", "+815012345678", "+6907290"} {
		t.Run("no form of the full number "+n+" appears in any log line", func(t *testing.T) {
			for _, f := range secNumberForms(n) {
				if strings.Contains(jsonText, f) || strings.Contains(consoleText, f) {
					t.Errorf("the log holds %s as %q", n, f)
				}
			}
		})
	}
	t.Run("a number refused for its country is logged masked however short it is", func(t *testing.T) {
		found := false
		for _, en := range entries {
			if p, _ := en.ContextMap()["phone"].(string); strings.HasPrefix(p, "+690") {
				found = true
				if !strings.Contains(p, "*") {
					t.Errorf("the refused number is logged as %q", p)
				}
			}
		}
		if !found {
			t.Fatal("no log entry names the refused +690 number")
		}
	})
	for _, tc := range []struct{ name, field, value string }{
		{"an identity with CR, LF and an ANSI escape", "identity", hostile},
		{"a request path with CR, LF and an ANSI escape", "path", hostilePath},
	} {
		t.Run(tc.name+" is logged escaped, on one line, and intact", func(t *testing.T) {
			for name, text := range map[string]string{"JSON": jsonText, "console": consoleText} {
				if strings.ContainsAny(text, "\r\x1b") {
					t.Errorf("the %s log holds a raw CR or escape character", name)
				}
				if lines := strings.Count(text, "\n"); lines != len(entries) {
					t.Errorf("the %s log has %d lines for %d entries: an entry was split", name, lines, len(entries))
				}
			}
			escaped, _ := json.Marshal(tc.value)
			if !strings.Contains(jsonText, string(escaped)) || !strings.Contains(consoleText, string(escaped)) {
				t.Errorf("neither log holds %s escaped as %s", tc.field, escaped)
			}
			found := false
			for _, line := range strings.Split(strings.TrimSpace(jsonText), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("a JSON log line is not JSON: %q", line)
				}
				found = found || m[tc.field] == tc.value
			}
			if !found {
				t.Errorf("no JSON entry has %s %q", tc.field, tc.value)
			}
		})
	}
	t.Run("every send, verify, lock-out, policy refusal and rate-limit hit is a structured event", func(t *testing.T) {
		events := map[string]int{}
		for _, en := range entries {
			m := en.ContextMap()
			ev, _ := m["event"].(string)
			events[ev]++
			if p, ok := m["phone"].(string); ok && !strings.Contains(p, "*") {
				t.Errorf("event %s logs the phone %q unmasked", ev, p)
			}
			if ev == "send" && (m["identity"] != hostile || m["challenge"] == "") {
				t.Errorf("send event %v lacks the identity or the challenge", m)
			}
		}
		sends := 0
		for _, m := range e.messages() {
			if secCodeRE.MatchString(m.Body) {
				sends++
			}
		}
		for ev, want := range map[string]int{"send": sends, "policy_refusal": 2, "lockout": 1, "no_identity": 1} {
			if events[ev] != want {
				t.Errorf("%d %q events, want %d (all: %v)", events[ev], ev, want, events)
			}
		}
		for _, ev := range []string{"verify", "rate_limited", "send_refused", "enrollment"} {
			if events[ev] == 0 {
				t.Errorf("no %q event (all: %v)", ev, events)
			}
		}
	})
}

func TestSecurityRule24_StoreDownFailsClosed(t *testing.T) {
	t.Parallel()
	srv := secRedis(t)
	e := htNew(t, nil, secRedisStoreTimeout(srv, 300*time.Millisecond))
	b := secBrowser(t, e, "r24-alice")
	csrf := b.csrf()
	code := b.send()
	// failsClosed asserts that every kind of request is answered 503, with
	// nothing sent and nothing passed on.
	failsClosed := func(t *testing.T) {
		b.t = t
		sent, passed := len(e.messages()), e.next.Load()
		for _, tc := range []struct {
			name string
			do   func() (*httptest.ResponseRecorder, string)
			want string
		}{
			{"the step-up page", func() (*httptest.ResponseRecorder, string) { return b.get("/_stepup/?r=%2Fsettings") }, "Temporarily unavailable"},
			{"a send", b.postSend, "Temporarily unavailable"},
			{"a verify with the right code", func() (*httptest.ResponseRecorder, string) { return b.verify(code) }, "Temporarily unavailable"},
			{"a protected page", func() (*httptest.ResponseRecorder, string) { return b.get("/settings") }, "Temporarily unavailable"},
			{"a JSON client on a protected page", func() (*httptest.ResponseRecorder, string) {
				return b.get("/settings", "Accept: application/json")
			}, `"error":"unavailable"`},
			{"the JSON state", func() (*httptest.ResponseRecorder, string) { return b.get("/_stepup/api/state") }, `"error":"unavailable"`},
		} {
			t.Run(tc.name+" is answered 503 and nothing else", func(t *testing.T) {
				b.t = t
				w, body := tc.do()
				htWant(t, tc.name, w, body, http.StatusServiceUnavailable, tc.want)
				if w.Header().Get("Retry-After") == "" {
					t.Error("no Retry-After")
				}
			})
		}
		t.Run("a JSON send is answered 503", func(t *testing.T) {
			b.t = t
			if status, out, _ := apCall(b, "/_stepup/api/send", csrf, `{"r":"/settings"}`); status != http.StatusServiceUnavailable || out["error"] != "unavailable" {
				t.Fatalf("%d %v", status, out)
			}
		})
		if n := len(e.messages()); n != sent {
			t.Errorf("%d messages sent with the store down", n-sent)
		}
		if e.next.Load() != passed {
			t.Error("a request passed to the upstream with the store down")
		}
	}
	t.Run("with Redis stopped", func(t *testing.T) {
		srv.Stop()
		failsClosed(t)
	})
	t.Run("with Redis frozen, too slow to answer", func(t *testing.T) {
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Pause(); err != nil {
			t.Fatal(err)
		}
		defer srv.Resume()
		failsClosed(t)
	})
	t.Run("once Redis answers again the same handler steps up, without a restart", func(t *testing.T) {
		b.t = t
		if err := srv.Resume(); err != nil {
			t.Fatal(err)
		}
		b.stepUp()
		b.wantPass("after the store came back")
	})
	t.Run("a handler started while Redis is down fails closed, then works once it is up", func(t *testing.T) {
		srv.Stop()
		late := htNew(t, nil, secRedisStoreTimeout(srv, 300*time.Millisecond))
		lb := secBrowser(t, late, "r24-late")
		w, body := lb.get("/_stepup/?r=%2Fsettings")
		htWant(t, "the page with Redis down since the start", w, body, http.StatusServiceUnavailable, "Temporarily unavailable")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		lb.stepUp()
		lb.wantPass("once Redis is up")
	})
}

// secProvider is an SMS provider's HTTP API that answers as told: "ok"
// (202), "429", "500", "400", or "hang" (takes the request and never
// answers).
type secProvider struct {
	srv      *httptest.Server
	mode     atomic.Value
	requests atomic.Int64
	mu       sync.Mutex
	texts    []string
}

func secNewProvider(t *testing.T, mode string) *secProvider {
	p := &secProvider{}
	p.mode.Store(mode)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		var m struct {
			Text string `json:"text"`
		}
		_ = json.NewDecoder(r.Body).Decode(&m)
		p.mu.Lock()
		p.texts = append(p.texts, m.Text)
		p.mu.Unlock()
		switch mode := p.mode.Load().(string); mode {
		case "hang":
			<-r.Context().Done()
		case "ok":
			w.WriteHeader(http.StatusAccepted)
		default:
			status, _ := strconv.Atoi(mode)
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// secGatewayEnv is a handler whose codes go through the http gateway to
// url, followed (with failover) by the console gateway. Unlike htNew's, its
// service keeps the configured gateway.
func secGatewayEnv(t *testing.T, url string, failover bool) *htEnv {
	t.Helper()
	outbox := filepath.Join(t.TempDir(), "console.jsonl")
	httpGW := map[string]any{"type": "http", "url": url, "timeout": "300ms",
		"body": `{"to": {{json .To}}, "text": {{json .Text}}}`}
	var raw []byte
	if failover {
		raw, _ = json.Marshal(map[string]any{"type": "failover", "gateways": []any{httpGW, map[string]any{"type": "console", "outbox": outbox}}})
	} else {
		raw, _ = json.Marshal(httpGW)
	}
	e := htNew(t, nil, func(h *Handler) { h.GatewayRaw = raw })
	e.outbox = outbox
	svc, err := e.h.newService(e.h.service.Config(), e.store)
	if err != nil {
		t.Fatal(err)
	}
	e.h.service = svc
	return e
}

func TestSecurityRule25_GatewayDown(t *testing.T) {
	t.Parallel()
	closed := func(t *testing.T) string { return fmt.Sprintf("http://127.0.0.1:%d/send", redistest.FreePort(t)) }
	for _, tc := range []struct {
		name      string
		mode      string // "" for a closed port
		failover  bool
		status    int
		message   string
		requests  int64 // to the provider
		console   int   // messages the next gateway sent
		sameCode  bool  // the code the provider may have sent still works
		accepted  int64 // messages the provider took
		challenge bool
	}{
		{"a provider that cannot be reached, without failover: could not send, nothing sent", "", false, http.StatusBadGateway, "couldn't send the code", 0, 0, false, 0, false},
		{"a provider that cannot be reached, with failover: the next gateway sends it, once", "", true, http.StatusSeeOther, "", 0, 1, false, 0, true},
		{"a provider that answers 429, with failover: it did not take it, so the next gateway sends it, once", "429", true, http.StatusSeeOther, "", 1, 1, false, 0, true},
		{"a provider that answers 500, with failover: it may have taken it, so nothing more is tried", "500", true, http.StatusBadGateway, "may still arrive", 1, 0, true, 0, true},
		{"a provider that takes the request and never answers, with failover: nothing more is tried", "hang", true, http.StatusBadGateway, "may still arrive", 1, 0, true, 0, true},
		{"a provider that refuses the number (400), with failover: nothing more is tried", "400", true, http.StatusBadGateway, "couldn't send the code", 1, 0, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := closed(t)
			var p *secProvider
			if tc.mode != "" {
				p = secNewProvider(t, tc.mode)
				target = p.srv.URL + "/send"
			}
			e := secGatewayEnv(t, target, tc.failover)
			b := secBrowser(t, e, "r25-user")
			w, body := b.postSend()
			htWant(t, "send", w, html.UnescapeString(body), tc.status, tc.message)
			if n := len(e.messages()); n != tc.console {
				t.Errorf("the next gateway sent %d messages, want %d", n, tc.console)
			}
			if p != nil {
				if n := p.requests.Load(); n != tc.requests {
					t.Errorf("the provider got %d requests, want %d", n, tc.requests)
				}
			}
			if tc.sameCode {
				p.mu.Lock()
				sub := secCodeRE.FindStringSubmatch(p.texts[0])
				p.mu.Unlock()
				if sub == nil {
					t.Fatal("the provider got no code")
				}
				w, body := b.verify(sub[1])
				htWant(t, "the code the provider may have sent", w, body, http.StatusSeeOther, "")
			}
		})
	}
	t.Run("a double click sends one SMS", func(t *testing.T) {
		t.Parallel()
		p := secNewProvider(t, "ok")
		e := secGatewayEnv(t, p.srv.URL+"/send", true)
		b := secBrowser(t, e, "r25-double")
		form := url.Values{"csrf": {b.csrf()}, "r": {"/settings"}}
		answers := secStorm(t, e, []*http.Request{b.request(http.MethodPost, "/_stepup/send", form), b.request(http.MethodPost, "/_stepup/send", form)})
		codes := []int{answers[0].Code, answers[1].Code}
		if p.requests.Load()+int64(len(e.messages())) != 1 {
			t.Fatalf("two clicks at once sent %d SMS through the provider and %d through the next gateway, want 1 in all (answers %v)",
				p.requests.Load(), len(e.messages()), codes)
		}
	})
}

// --- The index ------------------------------------------------------------

package caddymodule

// Fuzz targets for what the Caddy glue parses from operators and from
// browsers: the sms_stepup directive and the step-up forms and JSON
// endpoints (SECURITY.md 5, 16, 18-22). FuzzSafeReturnPath, the return-path
// target, lives in request_test.go. `go test` runs the seeds as ordinary
// tests; scripts/fuzz runs each target with -fuzz for a while. Helpers carry
// an "fz" prefix so they never collide with the other test files.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/console"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// ---- FuzzCaddyfile ------------------------------------------------------

// fzCaddyfileSeeds follow the directive's name: valid blocks, each option
// with good and bad values, and syntax an operator could get wrong.
var fzCaddyfileSeeds = []string{
	"{\n\tidentity {http.auth.user.id}\n\tphone {http.request.header.X-Phone}\n}",
	"/admin* /billing/* {\n\tidentity {http.request.header.Remote-User}\n\tsession {http.request.cookie.app_session}\n\tphone {http.request.header.Remote-Phone}\n\tphone_file /etc/caddy/phones.csv\n\tpath_prefix /_verify\n\tlogin_url /login\n\tcode_length 8\n\tcode_ttl 3m\n\tmax_attempts 3\n\ttoken_ttl 30m\n\tmax_age 10m\n\tsigning_key {env.STEPUP_SIGNING_KEY}\n\tdefault_region JP\n\tallow_countries JP US\n\tservice_name \"Example Corp\"\n\tstore memory sessions\n\tgateway console {\n\t\toutbox /var/log/caddy/sms-outbox.jsonl\n\t}\n}",
	"@admin {\n\tidentity {http.auth.user.id}\n\tphone_file phones.csv\n}",
	"* {\n\tidentity x\n\tphone +819012345678\n\tmessage en \"{{.Code}} is your code\"\n\tmessage ja \"コード {{.Code}}\"\n\tmax_segments 2\n\twebotp_host example.com\n\treceipts_url https://example.com\n\tmax_calls 2\n\ttemplates /etc/caddy/pages\n}",
	"{\n\tidentity x\n\tphone y\n\tbrand {\n\t\tname \"Example\"\n\t\tlogo_url /logo.png\n\t\tcolor #0a7cff\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tbrand {\n\t\tcolor red;background:url(//evil)\n\t\tlogo_url javascript:alert(1)\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tstore redis {\n\t\taddress 127.0.0.1:6379\n\t\tpassword {env.REDIS_PASSWORD}\n\t\tkey_prefix stepup:\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tgateway twilio {\n\t\taccount_sid AC123\n\t\tauth_token {env.TWILIO_TOKEN}\n\t\tfrom +15005550006\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tgateway http https://sms.example/send {\n\t\tmethod POST\n\t\theader Authorization \"Bearer x\"\n\t\tbody \"{\\\"to\\\":\\\"{to}\\\"}\"\n\t\tsuccess_status 200 202\n\t\ttimeout 5s\n\t\thmac_header X-Sig secret\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tgateway kannel http://127.0.0.1:13013/cgi-bin/sendsms {\n\t\tusername u\n\t\tpassword p\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tgateway failover {\n\t\tconsole\n\t\thttp https://b.example\n\t\tfailure_threshold 3\n\t\topen_for 1m\n\t}\n}",
	// Out of range, wrong type, missing and extra values.
	"{\n\tidentity x\n\tphone y\n\tcode_length 4\n}",
	"{\n\tidentity x\n\tphone y\n\tcode_length 99999999999999999999\n}",
	"{\n\tidentity x\n\tphone y\n\tcode_length -6\n}",
	"{\n\tidentity x\n\tphone y\n\tcode_length 0x8\n}",
	"{\n\tidentity x\n\tphone y\n\tcode_ttl 11m\n}",
	"{\n\tidentity x\n\tphone y\n\tcode_ttl -5m\n}",
	"{\n\tidentity x\n\tphone y\n\tcode_ttl 1d\n}",
	"{\n\tidentity x\n\tphone y\n\tcode_ttl 9223372036854775807ns\n}",
	"{\n\tidentity x\n\tphone y\n\tmax_attempts 0\n}",
	"{\n\tidentity x\n\tphone y\n\tmax_attempts 11\n}",
	"{\n\tidentity x\n\tphone y\n\tmax_attempts\n}",
	"{\n\tidentity x\n\tphone y\n\tmax_attempts 3 4\n}",
	"{\n\tidentity x\n\tphone y\n\ttoken_ttl 25h\n\tmax_age 0s\n}",
	"{\n\tidentity x\n\tphone y\n\tpath_prefix /\n}",
	"{\n\tidentity x\n\tphone y\n\tpath_prefix _stepup\n}",
	"{\n\tidentity x\n\tphone y\n\tpath_prefix //\n}", // the known issue below
	"{\n\tidentity x\n\tphone y\n\tpath_prefix /_stepup/\n}",
	"{\n\tidentity x\n\tphone y\n\tpath_prefix /a{b}\n}",
	"{\n\tidentity x\n\tphone y\n\tallow_countries\n}",
	"{\n\tidentity x\n\tphone y\n\tmessage en\n}",
	"{\n\tidentity x\n\tphone y\n\tservice_name\n}",
	"{\n\tidentity x\n\tphone y\n\tbrand x {\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tbrand {\n\t\tsize 3\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tstore nosuch\n}",
	"{\n\tidentity x\n\tphone y\n\tgateway\n}",
	"{\n\tidentity x\n\tphone y\n\tgateway failover {\n\t\tfailover {\n\t\t\tconsole\n\t\t}\n\t}\n}",
	"{\n\tidentity x\n\tphone y\n\tnosuch_option 1\n}",
	"{\n\tidentity \" \"\n\tphone y\n}",
	"{\n\tphone y\n}",
	"{\n\tidentity x\n}",
	"", "{", "}", "{}", "{\n}", "{\n\t{\n\t}\n}", "/a @b {\n}", "@b /a {\n}", "@a @b", "relative {\n}",
	"\"@a <<EOF\" {\n\tidentity x\n\tphone y\n}",
	"\"@a <<\n\" {\n\tidentity x\n\tphone y\n}", // the known issue below
	"\"@a b\" {\n\tidentity x\n\tphone y\n}",
	"<<EOF\nidentity x\nEOF {\n}",
	"{\n\tidentity `x\n\ty`\n\tphone \"\\\"\"\n}",
	"{\n\tidentity {$HOME}\n\tphone {env.PHONE}\n}",
	"{\n\timport snippet\n}",
}

// fzKnownIssueMatcherExit makes FuzzCaddyfile skip parseCaddyfile for a
// named matcher that is not one clean Caddyfile token, such as the quoted
// "@a <<" followed by a newline: a KNOWN ISSUE, reported with the fuzz
// targets. parseCaddyfile re-lexes the matcher's name with
// caddyfile.NewTestDispenser, which calls log.Fatalf when the lexer refuses
// it, so the adapter (caddy adapt, caddy run, a reload through the admin
// API) exits the whole process instead of returning a config error. Set this
// to false once parseCaddyfile builds the dispenser from the token itself.
const fzKnownIssueMatcherExit = false

// fzKnownIssuePrefixSlashes makes FuzzCaddyfile accept a path_prefix of
// "//": a KNOWN ISSUE, reported with the fuzz targets. The parser refuses
// "/" but takes "//", which Provision trims to "/", so the step-up page
// takes over the site's root: GET / answers the step-up page, never the
// application.
// Set this to false once the parser refuses what Provision would trim to
// "/".
const fzKnownIssuePrefixSlashes = false

// FuzzCaddyfile feeds `sms_stepup ` and fuzzed text to the directive's
// parser, as UnmarshalCaddyfile and as Caddy's Caddyfile adapter calls it
// (parseCaddyfile). It never panics or exits; every error names the file
// and line; what it accepts keeps each option within its documented range
// and survives a JSON round trip.
func FuzzCaddyfile(f *testing.F) {
	for _, s := range fzCaddyfileSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		input := "sms_stepup " + text
		// caddyfile.NewTestDispenser calls log.Fatalf on input the lexer
		// refuses; such input never reaches the directive.
		tokens, err := caddyfile.Tokenize([]byte(input), "Testfile")
		if err != nil || len(tokens) == 0 {
			return
		}
		h := new(Handler)
		err = h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
		if err == nil {
			err = h.validateCaddyfile() // as parseCaddyfile does
		}
		if err != nil {
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("UnmarshalCaddyfile(%q): error %q does not name the file and line", input, err)
			}
		} else {
			fzCheckParsed(t, input, h)
		}

		// As the Caddyfile adapter calls the directive: it also turns a
		// named matcher into its matcher set.
		if fzKnownIssueMatcherExit && h.namedMatcher != "" {
			if _, err := caddyfile.Tokenize([]byte(h.namedMatcher), "Testfile"); err != nil {
				return // the known issue: parseCaddyfile would exit the process
			}
		}
		values, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewDispenser(tokens)})
		if err != nil {
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("parseCaddyfile(%q): error %q does not name the file and line", input, err)
			}
			return
		}
		if len(values) != 1 {
			t.Fatalf("parseCaddyfile(%q) made %d config values, want one route", input, len(values))
		}
	})
}

// fzCheckParsed checks a Handler the directive's parser accepted.
func fzCheckParsed(t *testing.T, input string, h *Handler) {
	t.Helper()
	in := func(what string, v, lo, hi int64) {
		if v != 0 && (v < lo || v > hi) {
			t.Fatalf("UnmarshalCaddyfile(%q) accepted %s %d, outside %d to %d", input, what, v, lo, hi)
		}
	}
	in("code_length", int64(h.CodeLength), otp.MinCodeLength, otp.MaxCodeLength)
	in("code_ttl", int64(h.CodeTTL), 1, int64(otp.MaxCodeTTL))
	in("max_attempts", int64(h.MaxAttempts), 1, 10)
	in("token_ttl", int64(h.TokenTTL), 1, int64(24*time.Hour))
	in("max_age", int64(h.MaxAge), 1, int64(24*time.Hour))
	in("max_segments", int64(h.MaxSegments), 1, 10)
	in("max_calls", int64(h.MaxCalls), 1, 5)
	if strings.TrimSpace(h.Identity) == "" || (h.Phone == "" && h.PhoneFile == "") {
		t.Fatalf("UnmarshalCaddyfile(%q) accepted a handler without identity (%q) or phone source", input, h.Identity)
	}
	if p := h.PathPrefix; p != "" && (!strings.HasPrefix(p, "/") || p == "/" || strings.ContainsAny(p, "*?#{} ")) {
		t.Fatalf("UnmarshalCaddyfile(%q) accepted path_prefix %q", input, p)
	}
	// Provision drops one trailing slash: what remains must not be the
	// site's root either.
	if p := strings.TrimSuffix(h.PathPrefix, "/"); h.PathPrefix != "" && (p == "" || p == "/") && !fzKnownIssuePrefixSlashes {
		t.Fatalf("UnmarshalCaddyfile(%q) accepted path_prefix %q, which Provision makes %q: the site's root", input, h.PathPrefix, p)
	}
	if h.Brand != nil {
		if err := pages.CheckBrand(pages.Brand{Name: h.Brand.Name, LogoURL: h.Brand.LogoURL, Color: h.Brand.Color}); err != nil {
			t.Fatalf("UnmarshalCaddyfile(%q) accepted a brand that Provision refuses: %v", input, err)
		}
	}
	if h.namedMatcher != "" && (!strings.HasPrefix(h.namedMatcher, "@") || h.ProtectRaw != nil) {
		t.Fatalf("UnmarshalCaddyfile(%q) kept matcher %q with paths %s", input, h.namedMatcher, h.ProtectRaw)
	}
	for what, raw := range map[string]json.RawMessage{"store": h.StoreRaw, "gateway": h.GatewayRaw} {
		if raw == nil {
			continue
		}
		var mod struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &mod); err != nil || mod.Type == "" {
			t.Fatalf("UnmarshalCaddyfile(%q): %s %s is not a module object with a type: %v", input, what, raw, err)
		}
	}
	out, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("UnmarshalCaddyfile(%q) made a handler that does not marshal: %v", input, err)
	}
	var back Handler
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("the JSON of UnmarshalCaddyfile(%q) does not unmarshal: %v\n%s", input, err, out)
	}
	if again, _ := json.Marshal(&back); !bytes.Equal(again, out) {
		t.Fatalf("the JSON of UnmarshalCaddyfile(%q) changes in a round trip:\n%s\n%s", input, out, again)
	}
}

// ---- FuzzFormHandlers ---------------------------------------------------

// The endpoints FuzzFormHandlers posts to, picked by the low bits of sel.
var fzEndpoints = [8]string{
	"/_stepup/send", "/_stepup/verify", "/_stepup/call", "/_stepup/api/send",
	"/_stepup/api/verify", "/_stepup/api/call", "/_stepup/verify", "/_stepup/api/verify",
}

// The other bits of sel say what the browser did before the fuzzed POST
// and what the POST carries.
const (
	fzEndpointBits = 0x07
	fzGetPage      = 0x08 // open the step-up page first: a CSRF token and its nonce cookie
	fzSendFirst    = 0x10 // ask for a code first (opens the page too): a live challenge
	fzNonceCookie  = 0x20 // send the CSRF nonce cookie
	fzChallenge    = 0x40 // send the challenge cookie
	fzRawBody      = 0x80 // post raw as the whole body instead of the fields
)

// fzValid is the sel of a well-formed post with every cookie.
const fzValid = fzGetPage | fzSendFirst | fzNonceCookie | fzChallenge

// fzFormSeed is one seed of FuzzFormHandlers. In code, "{code}" becomes the
// code just sent; in csrf and raw, "{csrf}" becomes the page's CSRF token.
type fzFormSeed struct {
	sel                                       uint8
	code, ret, lang, csrf, origin, ctype, raw string
	headers                                   string
}

var fzFormSeeds = []fzFormSeed{
	// The happy paths, form and JSON.
	{sel: fzValid | 1, code: "{code}", ret: "/settings", csrf: "{csrf}"},
	{sel: fzValid | 4, code: "{code}", ret: "/settings", csrf: "{csrf}"},
	{sel: fzValid | 1, code: " {code} ", ret: "/a/b?x=1", lang: "ja", csrf: "{csrf}", origin: "https://example.com"},
	{sel: fzGetPage | fzNonceCookie | 0, ret: "/settings", csrf: "{csrf}"},
	{sel: fzGetPage | fzNonceCookie | 3, ret: "/settings", csrf: "{csrf}"},
	{sel: fzValid | 0, ret: "/settings", csrf: "{csrf}"},
	{sel: fzValid | 2, ret: "/settings", csrf: "{csrf}"},
	{sel: fzValid | 5, csrf: "{csrf}"},
	// Wrong and malformed codes.
	{sel: fzValid | 1, code: "000000", ret: "/settings", csrf: "{csrf}"},
	{sel: fzValid | 1, code: "{code}0", csrf: "{csrf}"},
	{sel: fzValid | 4, code: "12345", csrf: "{csrf}"},
	{sel: fzValid | 1, code: "１２３４５６", csrf: "{csrf}"},
	{sel: fzValid | 1, code: strings.Repeat("9", 20000), csrf: "{csrf}"},
	// CSRF and Origin: none, wrong, cross-site, no nonce cookie.
	{sel: fzValid | 1, code: "{code}", ret: "/settings"},
	{sel: fzValid | 1, code: "{code}", csrf: "x{csrf}"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", origin: "https://evil.example"},
	{sel: fzValid | 4, code: "{code}", csrf: "{csrf}", origin: "null"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", headers: "Sec-Fetch-Site: cross-site"},
	{sel: fzGetPage | fzSendFirst | fzChallenge | 1, code: "{code}", csrf: "{csrf}"},
	{sel: fzGetPage | fzSendFirst | fzNonceCookie | 1, code: "{code}", csrf: "{csrf}"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", headers: "Cookie: __Host-stepup_csrf=attacker; __Host-stepup_challenge=attacker"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", headers: "Host: evil.example"},
	// Hostile return paths (SECURITY.md 19).
	{sel: fzValid | 1, code: "{code}", ret: "//evil.com", csrf: "{csrf}"},
	{sel: fzValid | 1, code: "{code}", ret: "/\\evil.com", csrf: "{csrf}"},
	{sel: fzValid | 1, code: "{code}", ret: "/.//evil.com", csrf: "{csrf}"},
	{sel: fzValid | 4, code: "{code}", ret: "https:evil.com", csrf: "{csrf}"},
	{sel: fzValid | 1, code: "{code}", ret: "/%2F%2Fevil.com", csrf: "{csrf}"},
	{sel: fzValid | 0, ret: "/a\r\nSet-Cookie: x=1", csrf: "{csrf}"},
	{sel: fzValid | 1, code: "{code}", ret: "javascript:alert(1)", csrf: "{csrf}"},
	// Content types and bodies the endpoints do not expect.
	{sel: fzValid | 4, code: "{code}", csrf: "{csrf}", ctype: "application/x-www-form-urlencoded"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", ctype: "application/json"},
	{sel: fzValid | 4, code: "{code}", csrf: "{csrf}", ctype: "application/json; charset=utf-8; x=\"y"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", ctype: "-"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", ctype: "multipart/form-data; boundary=x"},
	{sel: fzValid | fzRawBody | 1, csrf: "{csrf}", raw: "csrf={csrf}&code=%zz&r=%2Fsettings"},
	{sel: fzValid | fzRawBody | 1, csrf: "{csrf}", raw: "csrf={csrf}&code=1&code=2;r=/x"},
	{sel: fzValid | fzRawBody | 1, raw: strings.Repeat("a=b&", 5000)},
	{sel: fzValid | fzRawBody | 4, csrf: "{csrf}", raw: `{"code":"123456","r":"/x","lang":"ja"}`},
	{sel: fzValid | fzRawBody | 4, csrf: "{csrf}", raw: `{"code":123456}`},
	{sel: fzValid | fzRawBody | 4, csrf: "{csrf}", raw: `{"code":"1","code":"2"}{"trailing":1}`},
	{sel: fzValid | fzRawBody | 4, csrf: "{csrf}", raw: `[[[[[[[[[[[[[[[[[[[[[[[[[[[[`},
	{sel: fzValid | fzRawBody | 3, csrf: "{csrf}", raw: `null`},
	{sel: fzValid | fzRawBody | 3, csrf: "{csrf}", raw: "\"" + strings.Repeat("\\u0000", 4000) + "\""},
	// Headers that change the answer's form or try to speak for the plugin.
	{sel: fzValid | 1, code: "000000", csrf: "{csrf}", headers: "Accept: application/json\nX-Requested-With: fetch"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", headers: "X-Stepup-Identity: admin\nAccept-Language: ja;q=0.9, en;q=x"},
	{sel: fzValid | 1, code: "{code}", csrf: "{csrf}", lang: "../../etc/passwd"},
	{sel: fzValid | 0, csrf: "{csrf}", lang: "ja\r\nX: y"},
}

// fzFormEnv is the provisioned handler FuzzFormHandlers drives; each input
// gets a fresh store and outbox.
type fzFormEnv struct {
	*htEnv
	cfg    otp.Config
	outbox string
}

// fzReset gives the handler a fresh memory store and outbox, so that no
// input sees the counters or challenges of another.
func (e *fzFormEnv) fzReset(t *testing.T) {
	store := memory.New(e.clock, time.Hour)
	t.Cleanup(func() { store.Close() })
	if err := os.Remove(e.outbox); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	svc, err := otp.NewService(e.cfg, store, console.New(nil, e.outbox, e.clock), e.h.keys, e.clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.h.service, e.h.store = svc, store
}

var fzCodeRE = regexp.MustCompile(`\d{6,10}`)

// fzCodes returns the codes in the outbox, oldest first.
func (e *fzFormEnv) fzCodes(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(e.outbox)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m htMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("outbox line %q: %v", sc.Text(), err)
		}
		code := fzCodeRE.FindString(m.Body)
		if code == "" || m.To != htNumber {
			t.Fatalf("outbox message %+v: want a code to %s", m, htNumber)
		}
		codes = append(codes, code)
	}
	return codes
}

// fzHeaderOK reports whether name and value could arrive in a request
// that Caddy's HTTP server accepted.
func fzHeaderOK(name, value string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzFormHandlers posts fuzzed forms and JSON to the step-up endpoints of a
// provisioned handler, after a browser has (or has not) opened the page and
// asked for a code, with fuzzed return paths, Origin, Content-Type, CSRF
// token, cookies and headers. It never panics or answers 5xx; a redirect
// only ever goes to a same-site path; a step-up cookie is set only for the
// code just sent, with the right CSRF token and origin, once; a code is sent
// only with them; the code and the step-up token never appear in an answer
// or a URL; the JSON endpoints never redirect and always answer JSON; every
// cookie carries the __Host- prefix, Secure, HttpOnly and Path=/.
func FuzzFormHandlers(f *testing.F) {
	for _, s := range fzFormSeeds {
		f.Add(s.sel, s.code, s.ret, s.lang, s.csrf, s.origin, s.ctype, s.raw, s.headers)
	}
	for i, p := range cfReturnPaths {
		f.Add(uint8(fzValid|[]uint8{1, 4, 0}[i%3]), "{code}", p.raw, "", "{csrf}", "", "", "", "")
	}
	e := &fzFormEnv{htEnv: htNew(f, nil, nil), outbox: filepath.Join(f.TempDir(), "outbox.jsonl")}
	e.h.logger = zap.NewNop()
	e.cfg = e.h.service.Config()

	f.Fuzz(func(t *testing.T, sel uint8, code, ret, lang, csrf, origin, ctype, raw, headers string) {
		e.fzReset(t)
		// A fresh browser: the helpers of flow_test.go with this input's t.
		jar, _ := cookiejar.New(nil)
		b := &htBrowser{e: e.htEnv, t: t, user: "alice", jar: jar}
		realCSRF, realCode := "", ""
		if sel&(fzGetPage|fzSendFirst) != 0 {
			realCSRF = b.csrf()
		}
		if sel&fzSendFirst != 0 {
			if w, body := b.postSend(); w.Code != http.StatusSeeOther {
				t.Fatalf("asking for a code: status %d:\n%s", w.Code, body)
			}
			codes := e.fzCodes(t)
			if len(codes) != 1 {
				t.Fatalf("asking for a code sent %d messages", len(codes))
			}
			realCode = codes[0]
		}
		csrf = strings.ReplaceAll(csrf, "{csrf}", realCSRF)
		raw = strings.ReplaceAll(raw, "{csrf}", realCSRF)
		code = strings.ReplaceAll(code, "{code}", realCode)

		target := fzEndpoints[sel&fzEndpointBits]
		api := strings.HasPrefix(target, "/_stepup/api/")
		var body string
		switch {
		case sel&fzRawBody != 0:
			body = raw
		case api:
			js, _ := json.Marshal(map[string]string{"code": code, "r": ret, "lang": lang})
			body = string(js)
		default:
			body = url.Values{"code": {code}, "r": {ret}, "lang": {lang}, "csrf": {csrf}}.Encode()
		}
		req := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "https://example.com"+target, strings.NewReader(body))
			switch {
			case ctype == "-":
			case ctype != "":
				if fzHeaderOK("Content-Type", ctype) {
					r.Header.Set("Content-Type", ctype)
				}
			case api:
				r.Header.Set("Content-Type", "application/json")
			default:
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if origin != "" && fzHeaderOK("Origin", origin) {
				r.Header.Set("Origin", origin)
			}
			if api && fzHeaderOK("X-CSRF-Token", csrf) {
				r.Header.Set("X-CSRF-Token", csrf)
			}
			for _, line := range strings.Split(headers, "\n") {
				k, v, _ := strings.Cut(line, ":")
				k, v = strings.TrimSpace(k), strings.TrimSpace(v)
				switch {
				case !fzHeaderOK(k, v):
				case strings.EqualFold(k, "Host"):
					r.Host = v
				default:
					r.Header.Add(k, v)
				}
			}
			for _, c := range jar.Cookies(htBase) {
				if (c.Name == "__Host-stepup_csrf" && sel&fzNonceCookie != 0) ||
					(c.Name == "__Host-stepup_challenge" && sel&fzChallenge != 0) {
					r.AddCookie(c)
				}
			}
			r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.10"}))
			repl := caddyhttp.NewTestReplacer(r)
			repl.Set("http.auth.user.id", "alice")
			return r
		}

		// The code may appear in an answer only where the fuzzer wrote it
		// itself, outside the code field (it cannot know it, but may
		// guess).
		echoed := realCode == ""
		for _, s := range []string{ret, lang, csrf, origin, ctype, raw, headers} {
			echoed = echoed || strings.Contains(s, realCode)
		}

		r := req()
		sent := len(e.fzCodes(t))
		w := httptest.NewRecorder()
		err := e.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			t.Fatalf("POST %s reached the next handler", target)
			return nil
		}))
		token := fzCheckAnswer(t, target, r, w, err, echoed, realCode)
		if api {
			// The API reads its JSON body itself and leaves the form
			// empty: record what the call carried in the form's shape, so
			// the checks below read one thing for both.
			r.PostForm = url.Values{"csrf": {r.Header.Get("X-CSRF-Token")}, "code": {code}}
		}
		for name := range r.Header {
			if strings.HasPrefix(strings.ToLower(name), "x-stepup-") {
				t.Fatalf("POST %s: request header %s was not removed (SECURITY.md 21)", target, name)
			}
		}

		// A code goes out only for a POST that passed the CSRF and origin
		// checks, one SMS per POST (SECURITY.md 20, 25).
		codes := e.fzCodes(t)
		switch n := len(codes) - sent; {
		case n > 1:
			t.Fatalf("POST %s sent %d messages", target, n)
		case n == 1 && (!strings.HasSuffix(target, "/send") && !strings.HasSuffix(target, "/call")):
			t.Fatalf("POST %s sent a message", target)
		case n == 1 && !fzCSRFPassed(r, realCSRF):
			t.Fatalf("POST %s sent a message without the CSRF token (%q) or with a cross-site Origin (%q)",
				target, r.PostForm.Get("csrf"), r.Header.Get("Origin"))
		}

		if token == "" {
			return
		}
		// A step-up only for the code just sent, on the verify endpoint,
		// past the CSRF and origin checks (SECURITY.md 5, 6, 20).
		posted, _ := otp.NormalizeCode(r.PostForm.Get("code"), e.cfg.CodeLength)
		switch {
		case !strings.HasSuffix(target, "/verify"):
			t.Fatalf("POST %s set a step-up cookie", target)
		case realCode == "" || posted != realCode:
			t.Fatalf("POST %s set a step-up cookie for code %q; the code sent was %q", target, r.PostForm.Get("code"), realCode)
		case !fzCSRFPassed(r, realCSRF):
			t.Fatalf("POST %s set a step-up cookie without the CSRF token (%q) or with a cross-site Origin (%q)",
				target, r.PostForm.Get("csrf"), r.Header.Get("Origin"))
		}
		// The same POST again: a code works once.
		r2 := req()
		w2 := httptest.NewRecorder()
		err = e.h.ServeHTTP(w2, r2, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		if fzCheckAnswer(t, target, r2, w2, err, echoed, realCode) != "" {
			t.Fatalf("POST %s with the same code twice set a step-up cookie twice", target)
		}
	})
}

// fzCSRFPassed reports whether r carried this browser's CSRF token and
// nonce cookie, and no cross-site Origin.
func fzCSRFPassed(r *http.Request, realCSRF string) bool {
	if realCSRF == "" || r.PostForm.Get("csrf") != realCSRF {
		return false
	}
	if c, err := r.Cookie("__Host-stepup_csrf"); err != nil || c.Value == "" {
		return false
	}
	switch origin := r.Header.Get("Origin"); {
	case origin == "":
		return r.Header.Get("Sec-Fetch-Site") != "cross-site"
	default:
		u, err := url.Parse(origin)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
}

// fzCheckAnswer checks one answer of the handler and returns the step-up
// token it set, if any.
func fzCheckAnswer(t *testing.T, target string, r *http.Request, w *httptest.ResponseRecorder, err error, echoed bool, code string) string {
	t.Helper()
	if err != nil {
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) || he.StatusCode >= 500 || he.StatusCode == 0 {
			t.Fatalf("POST %s: handler error %v (Caddy answers 500)", target, err)
		}
	}
	if w.Code >= 500 {
		t.Fatalf("POST %s: status %d:\n%s", target, w.Code, w.Body)
	}
	body := w.Body.String()
	loc := w.Header().Get("Location")
	api := strings.HasPrefix(target, "/_stepup/api/")
	if loc != "" {
		fzCheckLocation(t, target, loc)
		if api {
			t.Fatalf("POST %s: a JSON endpoint redirected to %q (SECURITY.md 18)", target, loc)
		}
	}
	if api {
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("POST %s: a JSON endpoint answered %d with Content-Type %q:\n%s", target, w.Code, ct, body)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("POST %s: a JSON endpoint answered %d with no JSON object: %v\n%s", target, w.Code, err, body)
		}
		if ret, ok := out["return"]; ok {
			s, _ := ret.(string)
			if _, safe := SafeReturnPath(s); !safe && s != "/" {
				t.Fatalf("POST %s: the JSON answer returns to %q, not a same-site path", target, ret)
			}
		}
	}
	if w.Code != http.StatusSeeOther && w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("POST %s: status %d without Cache-Control: no-store (SECURITY.md 22)", target, w.Code)
	}

	token := ""
	for _, c := range w.Result().Cookies() {
		if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" ||
			(c.SameSite != http.SameSiteLaxMode && c.SameSite != http.SameSiteStrictMode) {
			t.Fatalf("POST %s set cookie %q without __Host-, Secure, HttpOnly, Path=/ or SameSite, or with a Domain (SECURITY.md 16)", target, c.Raw)
		}
		if c.Name == "__Host-stepup" && c.Value != "" && c.MaxAge >= 0 {
			token = c.Value
		}
	}
	var hdrs strings.Builder
	for k, vs := range w.Header() {
		if k != "Set-Cookie" {
			hdrs.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
		}
	}
	if code != "" && !echoed && (strings.Contains(body, code) || strings.Contains(hdrs.String(), code)) {
		t.Fatalf("POST %s: the answer shows the code %s (SECURITY.md 22, 23):\n%s\n%s", target, code, hdrs.String(), body)
	}
	if token != "" && (strings.Contains(body, token) || strings.Contains(hdrs.String(), token)) {
		t.Fatalf("POST %s: the answer shows the step-up token outside its cookie", target)
	}
	return token
}

// fzCheckLocation fails unless loc is a same-site path: one SafeReturnPath
// accepts, or a page of the plugin's own.
func fzCheckLocation(t *testing.T, target, loc string) {
	t.Helper()
	for i := 0; i < len(loc); i++ {
		if c := loc[i]; c < 0x20 || c == 0x7f || c == '\\' {
			t.Fatalf("POST %s redirected to %q, which holds byte %#x", target, loc, c)
		}
	}
	if _, ok := SafeReturnPath(loc); ok || loc == "/" {
		return
	}
	if strings.HasPrefix(loc, "/_stepup/") && !strings.HasPrefix(loc, "/_stepup//") {
		return
	}
	t.Fatalf("POST %s redirected to %q, not a same-site path (SECURITY.md 19)", target, loc)
}

package otp_test

// Fuzz targets for the parsers of package otp that see hostile input
// (SECURITY.md 11 and 14). `go test` runs their seeds as ordinary tests;
// scripts/fuzz runs each with -fuzz for a while. Helpers here carry an "fz"
// prefix so they never collide with the other test files of the package.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nyaruka/phonenumbers"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// fzClock is a clock that never moves.
type fzClock struct{ now time.Time }

func (c fzClock) Now() time.Time { return c.now }

var fzNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// ---- FuzzPhonePolicy ----------------------------------------------------

// fzPhoneSeeds are numbers people type and numbers an attacker would try.
var fzPhoneSeeds = []string{
	// Accepted: mobiles of the allowed countries, in the forms people write.
	"090-1234-5678", "+81 90 1234 5678", "+81 (090) 1234-5678", "09012345678",
	"０９０−１２３４−５６７８", "060-1234-5678", "+816012345678", "+81 70 1234 5678",
	"+1 415 555 2671", "+1 (201) 555-0123", "+44 7911 123456", "+447700900123",
	"tel:+81-90-1234-5678", "+81 90 1234 5678 ext. 99", "+81 90 1234 5678;ext=1",
	// Refused by type: VoIP (050), toll free, fixed lines, premium, pager.
	"050-1234-5678", "+815012345678", "0120-123-456", "0570-123-456", "03-1234-5678",
	"+44 20 7946 0958", "+1 800 555 0100", "+1 900 555 0100", "+44 909 879 0000", "020-1234-5678",
	// Refused by country, and non-geographic numbers.
	"+33 6 12 34 56 78", "+86 138 0013 8000", "+882 3456 7890", "+800 1234 5678", "+870 773 111 632",
	// 060 with a length no mobile has, and other almost-numbers.
	"+8160123456789", "+81601234567", "060-1234-567", "+8160", "+81 60",
	// Garbage.
	"", "+", "++81 90 1234 5678", "+0", "0", "-", "1-800-FLOWERS", "+1 800 FLOWERS",
	"090\x00-1234-5678", "090\u200e1234\u200f5678", "+81\r\n90 1234 5678", "%2B819012345678",
	"+81 90 1234 5678 <script>", "１２３", "٠٩٠١٢٣٤٥٦٧٨", strings.Repeat("9", 300), strings.Repeat("+81", 100),
	"+81 90 1234 5678;phone-context=+1", "tel:0312345678;phone-context=+81", "+999 1234 5678",
}

// fzKnownIssueExtension makes FuzzPhonePolicy skip the mask checks for a
// number written with an extension ("09012345678x1", "... ext. 99",
// ";ext=1", "#1"): a KNOWN ISSUE, reported with the fuzz targets.
// PhonePolicy.Check accepts such a number, drops the extension from the
// E.164 but masks the INTERNATIONAL format with the extension in it, so the
// mask shows the extension's digits in place of the number's last four
// ("+81 90-****-*678 ext. 1") and differs from the mask of the same E.164
// checked again. Set this to false once Check refuses extensions or clears
// them before masking.
const fzKnownIssueExtension = false

// fzPolicy builds a policy or fails the fuzz target.
func fzPolicy(f *testing.F, cfg otp.PhonePolicyConfig) *otp.PhonePolicy {
	f.Helper()
	p, err := otp.NewPhonePolicy(cfg)
	if err != nil {
		f.Fatal(err)
	}
	return p
}

// FuzzPhonePolicy checks PhonePolicy.Check on arbitrary strings (SECURITY.md
// 11): it never panics; what it accepts is E.164, of an allowed country
// and type, valid to libphonenumber (or in Japan's 060 mobile range), stays
// the same when checked again, and is masked so that no more than the first
// two and last four national digits show. Refusals are policy refusals with a
// known reason. A second policy with a deny and an allow list agrees with
// the first on everything the lists do not name.
func FuzzPhonePolicy(f *testing.F) {
	for _, s := range fzPhoneSeeds {
		f.Add(s)
	}
	base := fzPolicy(f, otp.PhonePolicyConfig{DefaultRegion: "JP", AllowCountries: []string{"US", "GB", "JP"}})
	listed := fzPolicy(f, otp.PhonePolicyConfig{DefaultRegion: "JP", AllowCountries: []string{"US", "GB", "JP"},
		DenyNumbers: []string{"+8190"}, AllowNumbers: []string{"+8150"}})
	allowedCC := map[string]bool{"1": true, "44": true, "81": true}

	f.Fuzz(func(t *testing.T, raw string) {
		ext := false
		if num, err := phonenumbers.Parse(raw, "JP"); err == nil && num.GetExtension() != "" {
			ext = fzKnownIssueExtension
		}
		ph, err := base.Check(raw)
		if err != nil {
			fzCheckRefusal(t, raw, ph, err, ext)
		} else {
			fzCheckAccepted(t, raw, ph, allowedCC, ext)
			again, err := base.Check(ph.E164)
			same := again == ph
			if ext {
				// The known issue: what raw shows (its mask) holds the
				// extension, which its E.164 lost.
				same = again.E164 == ph.E164 && again.Region == ph.Region && again.Type == ph.Type && again.AllowListed == ph.AllowListed
			}
			if err != nil || !same {
				t.Fatalf("Check(%q) = %+v, but checking its E.164 again gives %+v, %v", raw, ph, again, err)
			}
		}

		lph, lerr := listed.Check(raw)
		if lerr != nil {
			fzCheckRefusal(t, raw, lph, lerr, ext)
		} else {
			fzCheckAccepted(t, raw, lph, nil, ext)
		}
		switch {
		case lerr == nil && strings.HasPrefix(lph.E164, "+8190"):
			t.Fatalf("Check(%q) accepted %s, which the deny list +8190 names", raw, lph.E164)
		case lerr == nil && lph.AllowListed:
			var refusal *otp.PhoneRefusal
			if !strings.HasPrefix(lph.E164, "+8150") || !errors.As(err, &refusal) || refusal.Reason == "invalid" {
				t.Fatalf("Check(%q) = %+v as allow-listed, but the policy without lists said %v", raw, lph, err)
			}
		case err == nil && !strings.HasPrefix(ph.E164, "+8190") && (lerr != nil || lph != ph):
			t.Fatalf("Check(%q): the lists +8190/+8150 changed %+v into %+v, %v", raw, ph, lph, lerr)
		case err != nil && lerr == nil:
			t.Fatalf("Check(%q): refused without lists (%v) but accepted with them: %+v", raw, err, lph)
		}
	})
}

// fzCheckAccepted checks a number the policy accepted. allowedCC, when not
// nil, are the calling codes the policy allows without an allow list.
func fzCheckAccepted(t *testing.T, raw string, ph otp.Phone, allowedCC map[string]bool, ext bool) {
	t.Helper()
	digits := strings.TrimPrefix(ph.E164, "+")
	if !strings.HasPrefix(ph.E164, "+") || !fzAllDigits(digits) || len(digits) > 15 {
		t.Fatalf("Check(%q) accepted %q, which is not + and at most 15 digits", raw, ph.E164)
	}
	num, err := phonenumbers.Parse(ph.E164, "ZZ")
	if err != nil {
		t.Fatalf("Check(%q) accepted %q, which libphonenumber cannot parse: %v", raw, ph.E164, err)
	}
	if phonenumbers.Format(num, phonenumbers.E164) != ph.E164 {
		t.Fatalf("Check(%q) accepted %q, which is not in E.164 form", raw, ph.E164)
	}
	if !phonenumbers.IsValidNumber(num) && !strings.HasPrefix(ph.E164, "+8160") {
		t.Fatalf("Check(%q) accepted %q, which libphonenumber calls invalid outside Japan's 060 range", raw, ph.E164)
	}
	cc := strconv.Itoa(int(num.GetCountryCode()))
	if allowedCC != nil && !allowedCC[cc] {
		t.Fatalf("Check(%q) accepted %q of calling code +%s, outside US, GB and JP", raw, ph.E164, cc)
	}
	if !ph.AllowListed && ph.Type != "mobile" && ph.Type != "fixed_line_or_mobile" {
		t.Fatalf("Check(%q) accepted %q of type %q; the default is mobile and fixed_line_or_mobile only", raw, ph.E164, ph.Type)
	}
	if !ph.AllowListed && strings.HasPrefix(ph.E164, "+8150") {
		t.Fatalf("Check(%q) accepted %q, a Japanese 050 VoIP number", raw, ph.E164)
	}
	if !ext {
		fzCheckMasked(t, raw, ph.Masked, cc, phonenumbers.GetNationalSignificantNumber(num))
	}
}

// fzCheckMasked checks that masked shows the calling code, then at most the
// first two and last four digits of nsn, with a star for each other digit.
func fzCheckMasked(t *testing.T, raw, masked, cc, nsn string) {
	t.Helper()
	rest, ok := strings.CutPrefix(masked, "+"+cc+" ")
	if !ok {
		t.Fatalf("Check(%q): masked %q does not start with +%s and a space", raw, masked, cc)
	}
	var shown, skeleton strings.Builder
	for _, r := range rest {
		switch {
		case r >= '0' && r <= '9':
			shown.WriteRune(r)
			skeleton.WriteRune(r)
		case r == '*':
			skeleton.WriteRune(r)
		}
	}
	if shown.Len() > 6 {
		t.Fatalf("Check(%q): masked %q shows %d national digits, at most 6 allowed", raw, masked, shown.Len())
	}
	for i := 0; i+7 <= len(nsn); i++ {
		if strings.Contains(shown.String(), nsn[i:i+7]) {
			t.Fatalf("Check(%q): masked %q holds %q of the national number %s", raw, masked, nsn[i:i+7], nsn)
		}
	}
	sk := skeleton.String()
	if len(sk) != len(nsn) {
		t.Fatalf("Check(%q): masked %q has %d digits and stars for the %d-digit national number %s", raw, masked, len(sk), len(nsn), nsn)
	}
	for i := range len(sk) {
		if sk[i] != '*' && sk[i] != nsn[i] {
			t.Fatalf("Check(%q): masked %q shows digits that are not the national number %s", raw, masked, nsn)
		}
	}
}

// fzCheckRefusal checks a number the policy refused.
func fzCheckRefusal(t *testing.T, raw string, ph otp.Phone, err error, ext bool) {
	t.Helper()
	var refusal *otp.PhoneRefusal
	if !errors.As(err, &refusal) || !otp.IsPhoneRefusal(err) {
		t.Fatalf("Check(%q): error %v (%T) is not a policy refusal", raw, err, err)
	}
	if ph != (otp.Phone{}) {
		t.Fatalf("Check(%q) refused (%v) but returned %+v", raw, err, ph)
	}
	switch refusal.Reason {
	case "invalid", "country", "type", "deny_list":
	default:
		t.Fatalf("Check(%q): refusal reason %q is none of invalid, country, type, deny_list", raw, refusal.Reason)
	}
	if refusal.Masked == "" || ext {
		return
	}
	num, perr := phonenumbers.Parse(raw, "JP")
	if perr != nil {
		t.Fatalf("Check(%q): refusal carries masked %q for input libphonenumber cannot parse", raw, refusal.Masked)
	}
	fzCheckMasked(t, raw, refusal.Masked, strconv.Itoa(int(num.GetCountryCode())), phonenumbers.GetNationalSignificantNumber(num))
}

func fzAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ---- FuzzTokenCheck -----------------------------------------------------

const (
	fzIssuer   = "https://app.example/_stepup"
	fzAudience = "https://app.example"
	fzTTL      = 15 * time.Minute
)

// fzIssuedToken is one token Tokens.Issue made in the fuzz target's setup.
type fzIssuedToken struct {
	subject, session string
	authTime         time.Time
}

func fzKeys(f *testing.F, root string) *otp.Keys {
	f.Helper()
	k, err := otp.DeriveKeys([]byte(root))
	if err != nil {
		f.Fatal(err)
	}
	return k
}

func fzTokens(f *testing.F, now time.Time, issuer string, keys ...*otp.Keys) *otp.Tokens {
	f.Helper()
	tokens, err := otp.NewTokens(otp.TokenConfig{Issuer: issuer, Audience: fzAudience, TTL: fzTTL, Keys: keys, Clock: fzClock{now}})
	if err != nil {
		f.Fatal(err)
	}
	return tokens
}

func fzIssue(f *testing.F, tokens *otp.Tokens, subject, session string, authTime time.Time) string {
	f.Helper()
	tok, err := tokens.Issue(subject, session, authTime)
	if err != nil {
		f.Fatal(err)
	}
	return tok
}

// fzFixedID turns a token Tokens.Issue made into the same token with a
// fixed "jti", signed again with key. The fuzzing engine runs the fuzz
// target's setup in each of its worker processes, so the tokens a worker
// takes for issued must be the same in all of them; Issue draws a random
// jti each time.
func fzFixedID(f *testing.F, token string, key []byte) string {
	f.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		f.Fatal(err)
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		f.Fatal(err)
	}
	if _, ok := claims["jti"]; !ok {
		f.Fatalf("issued token %s has no jti", raw)
	}
	claims["jti"] = "fuzz-fixed-token-id"
	if raw, err = json.Marshal(claims); err != nil {
		f.Fatal(err)
	}
	signing := parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw)
	sig, err := jwt.SigningMethodHS256.Sign(signing, key)
	if err != nil {
		f.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// fzSign signs claims as a JWT with the given header fields; a nil value
// leaves a field out.
func fzSign(f *testing.F, method jwt.SigningMethod, key any, header map[string]any, claims jwt.Claims) string {
	f.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// fzRaw joins a header and claims, each JSON, with a signature segment.
func fzRaw(header, claims, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + sig
}

// fzSameSignature reports whether token differs from issued only in how
// its signature segment is base64-encoded: the same header and payload
// segments, and a signature that decodes to the same bytes.
func fzSameSignature(token, issued string) bool {
	i := strings.LastIndexByte(token, '.')
	j := strings.LastIndexByte(issued, '.')
	if i < 0 || j < 0 || token[:i] != issued[:j] {
		return false
	}
	a, errA := base64.RawURLEncoding.DecodeString(token[i+1:])
	b, errB := base64.RawURLEncoding.DecodeString(issued[j+1:])
	return errA == nil && errB == nil && string(a) == string(b)
}

// fzKnownIssueSignatureEncodings makes FuzzTokenCheck accept a token that
// differs from an issued one only in the base64 encoding of its signature
// (non-zero trailing bits in the last character, or CR/LF inside the
// segment, both of which Go's lenient base64 decoding ignores): a KNOWN
// ISSUE, reported with the fuzz targets. Such a token carries a signature
// made by the server, so it is no forgery, but it is a distinct string, so it
// takes its own entry in the token cache. Set this to false once
// otp.NewTokens parses with jwt.WithStrictDecoding() and refuses CR/LF.
const fzKnownIssueSignatureEncodings = false

// FuzzTokenCheck feeds arbitrary strings to Tokens.Check (SECURITY.md 14):
// it never panics, errors are the package's token errors, a token it
// accepts is one of those Tokens.Issue made in the setup, for the subject
// and session asked, and a string that is not such a token never enters
// the cache of verified tokens.
func FuzzTokenCheck(f *testing.F) {
	k1 := fzKeys(f, "fuzz-root-key-one-0123456789abcdef")
	k2 := fzKeys(f, "fuzz-root-key-two-0123456789abcdef")
	k3 := fzKeys(f, "fuzz-root-key-three-0123456789abcd")
	tokens := fzTokens(f, fzNow, fzIssuer, k1, k2) // k2 is a previous key: verify only
	rotated := fzTokens(f, fzNow, fzIssuer, k2)
	earlier := fzTokens(f, fzNow.Add(-time.Hour), fzIssuer, k1)
	otherIssuer := fzTokens(f, fzNow, "https://other.example", k1)
	stranger := fzTokens(f, fzNow, fzIssuer, k3)

	issued := map[string]fzIssuedToken{}
	add := func(tok, subject, session string, authTime time.Time) string {
		issued[tok] = fzIssuedToken{subject, session, authTime}
		return tok
	}
	k1key, k2key := k1.TokenKey(), k2.TokenKey()
	alice := add(fzFixedID(f, fzIssue(f, tokens, "alice", "session-a", fzNow.Add(-time.Minute)), k1key), "alice", "session-a", fzNow.Add(-time.Minute))
	bob := add(fzFixedID(f, fzIssue(f, tokens, "bob", "", fzNow.Add(-10*time.Minute)), k1key), "bob", "", fzNow.Add(-10*time.Minute))
	old := add(fzFixedID(f, fzIssue(f, rotated, "alice", "session-a", fzNow), k2key), "alice", "session-a", fzNow)
	expired := fzFixedID(f, fzIssue(f, earlier, "alice", "session-a", fzNow.Add(-time.Hour)), k1key) // expired 45 minutes ago
	// Warm the cache with every valid issued token, so that the cache's size
	// must stay the same whatever the fuzzer sends.
	for tok, it := range issued {
		if _, err := tokens.Check(tok, it.subject, it.session, 0); err != nil {
			f.Fatalf("an issued token is refused: %v", err)
		}
	}
	warm := tokens.CacheLen()
	if warm != len(issued) {
		f.Fatalf("cache holds %d tokens after checking %d", warm, len(issued))
	}

	now := fzNow
	claims := func(change func(*otp.TokenClaims)) otp.TokenClaims {
		c := otp.TokenClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: fzIssuer, Subject: "alice", Audience: jwt.ClaimStrings{fzAudience},
				IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
				ExpiresAt: jwt.NewNumericDate(now.Add(fzTTL)), ID: "forged",
			},
			SessionHash: "session-a", AuthTime: now.Unix(), AMR: []string{"sms", "otp"},
		}
		if change != nil {
			change(&c)
		}
		return c
	}
	hdr := map[string]any{"typ": otp.TokenType, "kid": k1.ID}
	parts := strings.Split(alice, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		f.Fatal(err)
	}
	m["sub"] = "mallory"
	tampered, _ := json.Marshal(m)
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])

	seeds := []string{
		alice, bob, old, expired, "",
		// Tampered: another subject in the payload, a flipped signature
		// character, no signature, the signature of another token.
		parts[0] + "." + base64.RawURLEncoding.EncodeToString(tampered) + "." + parts[2],
		alice[:len(alice)-3] + "x" + alice[len(alice)-2:],
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + parts[1],
		parts[0] + "." + parts[1] + "." + strings.Split(bob, ".")[2],
		// alg none, other HMACs under the same key, the wrong typ or kid,
		// another key, another issuer.
		fzRaw(`{"alg":"none","typ":"stepup+jwt","kid":"`+k1.ID+`"}`, string(payload), ""),
		fzRaw(`{"alg":"NONE","typ":"stepup+jwt","kid":"`+k1.ID+`"}`, string(payload), parts[2]),
		fzSign(f, jwt.SigningMethodHS512, k1.TokenKey(), hdr, claims(nil)),
		fzSign(f, jwt.SigningMethodHS384, k1.TokenKey(), hdr, claims(nil)),
		fzSign(f, jwt.SigningMethodHS256, k1.TokenKey(), map[string]any{"typ": "JWT", "kid": k1.ID}, claims(nil)),
		fzSign(f, jwt.SigningMethodHS256, k1.TokenKey(), map[string]any{"typ": nil, "kid": k1.ID}, claims(nil)),
		fzSign(f, jwt.SigningMethodHS256, k1.TokenKey(), map[string]any{"typ": otp.TokenType}, claims(nil)),
		fzSign(f, jwt.SigningMethodHS256, k1.TokenKey(), map[string]any{"typ": otp.TokenType, "kid": []string{k1.ID}}, claims(nil)),
		fzSign(f, jwt.SigningMethodHS256, k3.TokenKey(), hdr, claims(nil)),
		fzFixedID(f, fzIssue(f, stranger, "alice", "session-a", now), k3.TokenKey()),
		fzFixedID(f, fzIssue(f, otherIssuer, "alice", "session-a", now), k1key),
		fzSign(f, jwt.SigningMethodHS256, []byte(""), hdr, claims(nil)),
		// Odd claims: no exp, no sub, a huge exp, exp as a string.
		fzRaw(string(header), `{"iss":"`+fzIssuer+`","aud":"`+fzAudience+`","sub":"alice","iat":1}`, parts[2]),
		fzRaw(string(header), `{"iss":"`+fzIssuer+`","aud":"`+fzAudience+`","exp":1e300,"iat":1e300,"sub":""}`, parts[2]),
		fzRaw(string(header), `{"exp":"2099-01-01","sub":{"a":1},"aud":[[]],"auth_time":-9e18}`, parts[2]),
		fzRaw(`{"alg":"HS256","typ":"stepup+jwt","kid":"`+k1.ID+`","crit":["exp"]}`, string(payload), parts[2]),
		fzRaw(`{"alg":"HS256","alg":"none","typ":"stepup+jwt","kid":"`+k1.ID+`"}`, string(payload), parts[2]),
		// Encoding games: padding, standard base64, spaces, many dots.
		parts[0] + "==." + parts[1] + "." + parts[2],
		strings.NewReplacer("-", "+", "_", "/").Replace(alice),
		" " + alice, alice + " ", alice + ".", alice + "." + alice,
		"..", "a.b.c", "e30.e30.", "eyJ.eyJ.eyJ", "\x00\xff.\x00.\x00",
		strings.Repeat("A", 4096) + "." + strings.Repeat("A", 4096) + "." + strings.Repeat("A", 43),
		strings.Repeat(".", 1000),
		fzRaw(`{"alg":"HS256","typ":"stepup+jwt","kid":"`+strings.Repeat("k", 10000)+`"}`, string(payload), parts[2]),
		fzRaw(strings.Repeat("[", 5000), string(payload), parts[2]),
	}
	// The same signature in other encodings (the known issue above): other
	// trailing bits in its last character, CR/LF inside it.
	const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(b64url, alice[len(alice)-1])
	seeds = append(seeds,
		alice[:len(alice)-1]+string(b64url[last^1]),
		alice[:len(alice)-1]+string(b64url[last^3]),
		alice[:len(alice)-10]+"\r\n"+alice[len(alice)-10:],
	)
	for _, s := range seeds {
		for who := range uint8(4) {
			f.Add(s, who)
		}
	}
	subjects := []string{"alice", "bob", "mallory", ""}
	sessions := []string{"session-a", "", "session-b"}
	sentinels := []error{otp.ErrTokenInvalid, otp.ErrTokenWrongSubject, otp.ErrTokenWrongSession, otp.ErrTokenTooOld, otp.ErrTokenExpired}

	f.Fuzz(func(t *testing.T, token string, who uint8) {
		subject := subjects[int(who)%len(subjects)]
		session := sessions[int(who/4)%len(sessions)]
		maxAge := time.Duration(0)
		if who&0x10 != 0 {
			maxAge = 5 * time.Minute
		}
		before := tokens.CacheLen()
		v, err := tokens.Check(token, subject, session, maxAge)
		after := tokens.CacheLen()
		issuedAs, isIssued := issued[token]
		if !isIssued && fzKnownIssueSignatureEncodings && after == before+1 {
			for tok, it := range issued {
				if fzSameSignature(token, tok) {
					// The known issue: the variant is verified and cached
					// under its own string.
					issuedAs, isIssued, before = it, true, after
					break
				}
			}
		}

		if err != nil {
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("Check(%q): error %v is none of the token errors", token, err)
			}
			if v != (otp.Verified{}) {
				t.Fatalf("Check(%q) failed (%v) but returned %+v", token, err, v)
			}
			if after != before {
				t.Fatalf("Check(%q) failed (%v) and the cache went from %d to %d tokens", token, err, before, after)
			}
			return
		}

		it, ok := issuedAs, isIssued
		if !ok && fzKnownIssueSignatureEncodings {
			// A variant cached by an earlier input.
			for tok, candidate := range issued {
				if fzSameSignature(token, tok) {
					it, ok = candidate, true
					break
				}
			}
		}
		if !ok {
			t.Fatalf("Check accepted %q, which no Tokens.Issue made: a forged token passes", token)
		}
		if after != before {
			t.Fatalf("Check(%q) of an issued token changed the cache from %d to %d tokens", token, before, after)
		}
		if v.Subject != subject || v.SessionHash != session || it.subject != subject || it.session != session {
			t.Fatalf("Check(%q) for %q in session %q accepted %+v, issued to %q in %q", token, subject, session, v, it.subject, it.session)
		}
		if !v.AuthTime.Equal(it.authTime) || !fzNow.Before(v.Expires) {
			t.Fatalf("Check(%q) = %+v: issued with auth time %s, or expired", token, v, it.authTime)
		}
		if maxAge > 0 && fzNow.Sub(v.AuthTime) > maxAge {
			t.Fatalf("Check(%q) accepted a step-up %s old where %s is the maximum", token, fzNow.Sub(v.AuthTime), maxAge)
		}
	})
}

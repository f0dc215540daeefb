package caddymodule

import (
	"net/http"
	"strconv"
	"strings"
)

// The Set-Cookie line of the plugin's cookies, written without
// http.Cookie.String (issue 17): that walks every byte of the value
// through its sanitiser, and the step-up token's value is a few hundred
// bytes, on each of the five cookies a step-up sets. The plugin's values
// are its own base64url tokens, ids and signed ids; a value of only those
// characters is written as it is, which is what String writes for it, and
// any other value still goes through http.SetCookie
// (TestSetCookieLineIsNetHTTPs compares the two).

// cookieLine is the Set-Cookie value http.Cookie.String gives for a cookie
// of the plugin (Path=/, HttpOnly, no Domain, no Expires), or "" when the
// value has a character outside base64url and the dot.
func cookieLine(name, value string, maxAge int, secure bool, sameSite http.SameSite) string {
	if !plainCookieValue(value) {
		return ""
	}
	var b strings.Builder
	b.Grow(len(name) + len(value) + maxCookieAttributes) // one allocation, the line's
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString("; Path=/")
	switch {
	case maxAge > 0:
		var digits [20]byte
		b.WriteString("; Max-Age=")
		b.Write(strconv.AppendInt(digits[:0], int64(maxAge), 10))
	case maxAge < 0:
		b.WriteString("; Max-Age=0")
	}
	b.WriteString("; HttpOnly")
	if secure {
		b.WriteString("; Secure")
	}
	switch sameSite {
	case http.SameSiteNoneMode:
		b.WriteString("; SameSite=None")
	case http.SameSiteLaxMode:
		b.WriteString("; SameSite=Lax")
	case http.SameSiteStrictMode:
		b.WriteString("; SameSite=Strict")
	}
	return b.String()
}

// maxCookieAttributes is the longest the attributes after the value can
// be: "; Path=/; Max-Age=" and 20 digits, "; HttpOnly; Secure;
// SameSite=Strict".
const maxCookieAttributes = len("; Path=/; Max-Age=") + 20 + len("; HttpOnly; Secure; SameSite=Strict")

// plainCookieValue reports whether v is only base64url characters and
// dots: nothing String would quote, drop or warn about.
func plainCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

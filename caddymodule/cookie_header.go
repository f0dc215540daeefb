package caddymodule

import (
	"net/http"
	"strconv"
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
	b := make([]byte, 0, len(name)+len(value)+80)
	b = append(b, name...)
	b = append(b, '=')
	b = append(b, value...)
	b = append(b, "; Path=/"...)
	switch {
	case maxAge > 0:
		b = append(b, "; Max-Age="...)
		b = strconv.AppendInt(b, int64(maxAge), 10)
	case maxAge < 0:
		b = append(b, "; Max-Age=0"...)
	}
	b = append(b, "; HttpOnly"...)
	if secure {
		b = append(b, "; Secure"...)
	}
	switch sameSite {
	case http.SameSiteNoneMode:
		b = append(b, "; SameSite=None"...)
	case http.SameSiteLaxMode:
		b = append(b, "; SameSite=Lax"...)
	case http.SameSiteStrictMode:
		b = append(b, "; SameSite=Strict"...)
	}
	return string(b)
}

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

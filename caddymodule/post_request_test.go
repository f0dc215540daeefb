package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestPostFormReadsAsParseForm: the plain form post that postForm reads
// itself gives what r.ParseForm gives in r.PostForm, refusals included
// (a semicolon, a bad escape, a body over maxPostBody), through readForm's
// MaxBytesReader; the buffers it reuses carry nothing from one body to the
// next.
func TestPostFormReadsAsParseForm(t *testing.T) {
	bodies := []string{
		"", "csrf=abc&r=%2Fsettings", "code=123456&code=654321&csrf=x", "csrf=a+b%20c&lang=ja",
		"csrf=abc;r=/", "csrf=%zz&r=/", "r=/&csrf=%", "=x&&csrf=y&novalue", "csrf=" + strings.Repeat("a", maxPostBody),
		"csrf=" + strings.Repeat("b", maxPostBody-10), "csrf=short",
	}
	for _, body := range bodies {
		name := body
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		post := func() (*httptest.ResponseRecorder, *http.Request) {
			r := httptest.NewRequest(http.MethodPost, "https://example.com/_stepup/send", strings.NewReader(body))
			r.Header.Set("Content-Type", formType)
			w := httptest.NewRecorder()
			r.Body = http.MaxBytesReader(w, r.Body, maxPostBody)
			return w, r
		}
		_, r := post()
		got, err := postForm(r)
		_, ref := post()
		refErr := ref.ParseForm()
		if (err != nil) != (refErr != nil) {
			t.Errorf("%q: postForm error %v, ParseForm error %v", name, err, refErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, ref.PostForm) && (len(got) != 0 || len(ref.PostForm) != 0) {
			t.Errorf("%q: postForm read %v, ParseForm %v", name, got, ref.PostForm)
		}
		if err == nil && !reflect.DeepEqual(r.PostForm, ref.PostForm) && (len(r.PostForm) != 0 || len(ref.PostForm) != 0) {
			t.Errorf("%q: postForm left r.PostForm %v, ParseForm %v", name, r.PostForm, ref.PostForm)
		}
	}
}

// TestPostFormLeavesOtherPostsToParseForm: a query in the URL, another
// Content-Type or parameters on it go through ParseForm, so a bad query
// still refuses the post and a multipart body is no form.
func TestPostFormLeavesOtherPostsToParseForm(t *testing.T) {
	for _, c := range []struct {
		url, ctype, body string
		wantErr          bool
		want             string // the csrf field
	}{
		{"/_stepup/send?x=%zz", formType, "csrf=a", true, ""},
		{"/_stepup/send?lang=ja", formType, "csrf=a", false, "a"},
		{"/_stepup/send", formType + "; charset=utf-8", "csrf=b", false, "b"},
		{"/_stepup/send", "multipart/form-data; boundary=x", "csrf=c", false, ""},
		{"/_stepup/send", "", "csrf=d", false, ""},
	} {
		r := httptest.NewRequest(http.MethodPost, "https://example.com"+c.url, strings.NewReader(c.body))
		if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		f, err := postForm(r)
		if (err != nil) != c.wantErr || err == nil && f.Get("csrf") != c.want {
			t.Errorf("%s %q: csrf %q, error %v; want %q, error %v", c.url, c.ctype, f.Get("csrf"), err, c.want, c.wantErr)
		}
	}
}

// TestPostFormWipesItsBuffer: the pooled buffer a form body was read into
// goes back holding none of it (the code and the CSRF token typed), as the
// pooled HMAC buffers hold nothing they hashed (otp/keys_mac.go).
func TestPostFormWipesItsBuffer(t *testing.T) {
	const secret = "code=424242&csrf=secret-csrf-token"
	r := httptest.NewRequest(http.MethodPost, "https://example.com/_stepup/verify", strings.NewReader(secret))
	r.Header.Set("Content-Type", formType)
	if f, err := postForm(r); err != nil || f.Get("code") != "424242" {
		t.Fatalf("postForm read %v, %v", f, err)
	}
	var taken []*[]byte
	defer func() {
		for _, b := range taken {
			formBuffers.Put(b)
		}
	}()
	for range 4 { // the buffer just put back comes out first on this P
		b := formBuffers.Get().(*[]byte)
		taken = append(taken, b)
		if held := (*b)[:cap(*b)]; strings.Contains(string(held), "424242") || strings.Contains(string(held), "secret-csrf") {
			t.Fatalf("a pooled form buffer still holds the body read before: %q", held[:len(secret)])
		}
	}
}

// TestPostFormVariantsReadAsParseForm: the review's attacks on the plain
// form reader: Content-Type spellings (case, blanks, a charset, repeated),
// bodies of unknown length (chunked) within and over the bound, repeated
// keys, a query string beside the body. Each reads as ParseForm reads it,
// refusals included, and a CSRF token only in the query is never taken.
func TestPostFormVariantsReadAsParseForm(t *testing.T) {
	long := "csrf=a&x=" + strings.Repeat("y", maxPostBody)
	for _, c := range []struct {
		name, target, body string
		ctypes             []string
		chunked            bool
	}{
		{"upper case", "/_stepup/verify", "csrf=a&code=1", []string{"Application/X-WWW-Form-URLEncoded"}, false},
		{"blanks around", "/_stepup/verify", "csrf=a&code=1", []string{" application/x-www-form-urlencoded "}, false},
		{"a charset", "/_stepup/verify", "csrf=a&code=1", []string{"application/x-www-form-urlencoded;charset=Shift_JIS"}, false},
		{"two Content-Types", "/_stepup/verify", "csrf=a&code=1", []string{formType, "multipart/form-data; boundary=x"}, false},
		{"chunked", "/_stepup/verify", "csrf=a&code=1", []string{formType}, true},
		{"chunked over the bound", "/_stepup/verify", long, []string{formType}, true},
		{"over the bound", "/_stepup/verify", long, []string{formType}, false},
		{"repeated keys", "/_stepup/verify", "csrf=first&csrf=second&code=1&code=2", []string{formType}, false},
		{"the token only in the query", "/_stepup/verify?csrf=from-query", "code=1", []string{formType}, false},
		{"the token in both", "/_stepup/verify?csrf=from-query", "csrf=from-body", []string{formType}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			post := func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "https://example.com"+c.target, strings.NewReader(c.body))
				r.Header["Content-Type"] = c.ctypes
				if c.chunked {
					r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
				}
				r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, maxPostBody)
				return r
			}
			got, err := postForm(post())
			ref := post()
			refErr := ref.ParseForm()
			if (err != nil) != (refErr != nil) {
				t.Fatalf("postForm error %v, ParseForm error %v", err, refErr)
			}
			if err == nil && got.Get("csrf") != ref.PostForm.Get("csrf") {
				t.Fatalf("postForm's csrf %q, ParseForm's %q", got.Get("csrf"), ref.PostForm.Get("csrf"))
			}
			if got.Get("csrf") == "from-query" {
				t.Fatal("the CSRF token was taken from the URL's query")
			}
		})
	}
}

package caddymodule

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
)

// postRequest is what a POST to the plugin carries, whether a browser
// sent it as a form or a script as JSON (with the CSRF token in the
// X-CSRF-Token header), so the handlers behind read one thing.
type postRequest struct {
	CSRF   string `json:"-"`
	Code   string `json:"code"`
	Return string `json:"r"`
	Lang   string `json:"lang"`
	// Phone and Reset are the enrolment's (form and api/enroll).
	Phone string `json:"phone"`
	Reset bool   `json:"reset"`
	// Captcha answers the CAPTCHA a risky send needs (captcha.go).
	Captcha captchaAnswer `json:"captcha"`
}

// maxPostBody bounds what a POST may send.
const maxPostBody = 16 << 10

// readForm reads a form POST; false when the body is not a form it can
// read.
func readForm(w http.ResponseWriter, r *http.Request) (postRequest, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPostBody)
	f, err := postForm(r)
	if err != nil {
		return postRequest{}, false
	}
	return postRequest{CSRF: f.Get("csrf"), Code: f.Get("code"), Return: f.Get("r"), Lang: f.Get("lang"),
		Phone: f.Get("phone"), Reset: f.Get("reset") != "",
		Captcha: captchaAnswer{Challenge: f.Get("captcha_challenge"), Nonce: f.Get("captcha_pow"), Text: f.Get("captcha_text"),
			Token: cmp.Or(f.Get("cf-turnstile-response"), f.Get("h-captcha-response"), f.Get("g-recaptcha-response"))}}, true
}

// postForm is r.PostForm as r.ParseForm reads it, errors included. A
// plain form post (Content-Type formType exactly, no query in the URL) is read
// here, without what ParseForm does besides (issue 17, the bots' posts):
// parsing the media type and the URL's query and copying both into
// r.Form (r.PostForm is set as ParseForm sets it). Anything else goes through ParseForm itself.
func postForm(r *http.Request) (url.Values, error) {
	if r.Body == nil || r.URL.RawQuery != "" || r.Header.Get("Content-Type") != formType {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		return r.PostForm, nil
	}
	buf := formBuffers.Get().(*[]byte)
	body, err := readAll((*buf)[:0], r.Body) // bounded by readForm's MaxBytesReader
	defer func() {
		clear(body) // the code and CSRF token typed stay out of the pool
		*buf = body[:0]
		formBuffers.Put(buf)
	}()
	if err != nil {
		return nil, err
	}
	f, err := url.ParseQuery(string(body))
	if err == nil {
		r.PostForm = f // as ParseForm leaves it, for whatever reads it after
	}
	return f, err
}

// formBuffers hold form bodies while they are read (at most maxPostBody,
// and so never more than that is kept), wiped before they go back.
var formBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readAll is io.ReadAll into b.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// readJSON reads a JSON POST (an empty body is an empty request); false
// when the body is not JSON it can read.
func readJSON(w http.ResponseWriter, r *http.Request) (postRequest, bool) {
	var req postRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPostBody))
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		return postRequest{}, false
	}
	req.CSRF = r.Header.Get("X-CSRF-Token")
	return req, true
}

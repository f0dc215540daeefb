package caddymodule

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
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
	if err := r.ParseForm(); err != nil {
		return postRequest{}, false
	}
	f := r.PostForm
	return postRequest{CSRF: f.Get("csrf"), Code: f.Get("code"), Return: f.Get("r"), Lang: f.Get("lang"),
		Phone: f.Get("phone"), Reset: f.Get("reset") != "",
		Captcha: captchaAnswer{Challenge: f.Get("captcha_challenge"), Nonce: f.Get("captcha_pow"), Text: f.Get("captcha_text"),
			Token: cmp.Or(f.Get("cf-turnstile-response"), f.Get("h-captcha-response"), f.Get("g-recaptcha-response"))}}, true
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

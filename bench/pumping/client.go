package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// client is one account's browser behind the proxy: its own cookies, and
// the headers the proxy sets for it.
type client struct {
	base            string
	http            *http.Client
	user, phone, ip string
}

func (s *sim) client(user, phone, ip string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{base: s.url, user: user, phone: phone, ip: ip, http: &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *client) do(method, path string, form url.Values) (*http.Response, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("X-User", c.user)
	req.Header.Set("X-Phone", c.phone)
	req.Header.Set("X-Forwarded-For", c.ip)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", c.base)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp, string(raw), err
}

func (c *client) get(path string) (int, error) {
	resp, _, err := c.do(http.MethodGet, path, nil)
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

var fieldRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// stepUpPage opens the step-up page for /settings and returns its hidden
// fields (the CSRF token and the return path).
func (c *client) stepUpPage() (url.Values, error) {
	resp, body, err := c.do(http.MethodGet, "/_stepup/?r=%2Fsettings", nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("step-up page: %d", resp.StatusCode)
	}
	f := url.Values{}
	for _, m := range fieldRE.FindAllStringSubmatch(body, -1) {
		f.Set(m[1], strings.ReplaceAll(m[2], "&amp;", "&"))
	}
	if f.Get("csrf") == "" {
		return nil, fmt.Errorf("step-up page without a CSRF token")
	}
	return f, nil
}

// post sends the page's form to path, with code when given; it returns
// the status and the redirect's target.
func (c *client) post(path string, f url.Values, code string) (int, string, error) {
	form := url.Values{"csrf": {f.Get("csrf")}, "r": {f.Get("r")}}
	if code != "" {
		form.Set("code", code)
	}
	resp, _, err := c.do(http.MethodPost, path, form)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

// Package httpsend is the HTTP client the gateways share. It sends one
// request, never two, and classifies each failure by whether the provider
// can have accepted the message: a request that never left can be tried on
// another gateway, one that left without an answer must not be.
package httpsend

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// NewClient returns a client with a time-out on the whole exchange that
// never reuses a connection: Go's transport may replay a GET (Kannel's
// sendsms is a GET) when a reused connection fails, which could send an SMS
// twice.
func NewClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	return &http.Client{
		Timeout:   timeout,
		Transport: tr,
		// A provider's redirect is not followed: it would be a second
		// request the provider did not promise to de-duplicate.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Do sends req once. A failure before the request was written is NotSent;
// after, Unknown.
func Do(client *http.Client, req *http.Request, gateway string) (*http.Response, error) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			wrote.Store(true)
		}
	}}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := client.Do(req)
	if err != nil {
		// Go's error repeats the whole URL, which may carry a password, the
		// number or the text (Kannel's sendsms is a GET): keep the host only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s %s://%s: %w", ue.Op, req.URL.Scheme, req.URL.Host, ue.Err)
		}
		if wrote.Load() {
			return nil, &otp.GatewayError{Gateway: gateway, Kind: otp.Unknown, Reason: "no_answer", Err: err}
		}
		return nil, &otp.GatewayError{Gateway: gateway, Kind: otp.NotSent, Reason: "unreachable", Err: err}
	}
	return resp, nil
}

// ReadBody reads at most 64 KiB of a provider's answer.
func ReadBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return b, nil
}

// Package carrier asks carrier databases what line a phone number is
// (キャリア判定), for otp.CarrierCheck: Twilio Lookup v2's Line Type
// Intelligence (Twilio), or an operator's own service (HTTP).
//
// Neither ever logs, nor puts into an error, a credential, a secret header
// or the number looked up.
package carrier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// DefaultTimeout bounds one lookup, from connecting to the end of the body.
const DefaultTimeout = 5 * time.Second

// maxBody is the largest answer read.
const maxBody = 64 << 10

// newClient returns a client that never follows a redirect: a credential
// must not travel to wherever a server points.
func newClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// checkURL accepts https, and plain http only to a loopback host (tests):
// credentials and numbers never cross a network in clear.
func checkURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%s %q: expected an absolute https:// URL", what, raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%s %q: expected https (plain http only to a loopback host, for tests)", what, raw)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// do sends req and returns a 200's body. Any other status, a transport
// error or a body too large is an error wrapping otp.ErrCarrierLookup
// that names the status, never the URL (it holds the number).
func do(ctx context.Context, client *http.Client, req *http.Request, who string) ([]byte, error) {
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, fmt.Errorf("%w: %s: %w", otp.ErrCarrierLookup, who, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %s: reading the answer: %w", otp.ErrCarrierLookup, who, err)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s answered %d", otp.ErrCarrierLookup, who, resp.StatusCode)
	case len(body) > maxBody:
		return nil, fmt.Errorf("%w: %s: the answer is larger than %d bytes", otp.ErrCarrierLookup, who, maxBody)
	}
	return body, nil
}

// lineType maps a database's type name onto the policy's, or fails.
func lineType(who, name string) (string, error) {
	t, ok := otp.CarrierType(name)
	if !ok {
		return "", fmt.Errorf("%w: %s answered line type %q, which is none of the known ones", otp.ErrCarrierLookup, who, name)
	}
	return t, nil
}

package kannel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpsend"
)

// Health asks smsbox's sendsms interface for a message with the account's
// username and password but no receiver and no text, which Kannel refuses
// without queueing anything: 400 "Missing receiver number" proves smsbox is
// up and takes the credentials, 403 "Authorization failed" that it does not.
// It says nothing of the SMSC link behind bearerbox (Kannel's admin status
// page does). The request never carries "to", so nothing can be sent.
func (g *Gateway) Health(ctx context.Context) error {
	q := url.Values{}
	q.Set("username", g.username)
	q.Set("password", g.password)
	u := *g.endpoint
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return errors.New("kannel: could not build the sendsms request")
	}
	resp, err := httpsend.Do(g.client, req, g.name)
	if err != nil {
		return err
	}
	body, err := httpsend.ReadBody(resp)
	if err != nil {
		return fmt.Errorf("%s: answer %d cut short: %w", g.name, resp.StatusCode, err)
	}
	answer := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(strings.ToLower(answer), "missing receiver"):
		return nil
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: smsbox refused the username and password (answer 403 %s)", g.name, g.snippet(answer, ""))
	}
	return fmt.Errorf("%s: not Kannel's answer to a sendsms request without a receiver (answer %d %s); is url smsbox's sendsms address?",
		g.name, resp.StatusCode, g.snippet(answer, ""))
}

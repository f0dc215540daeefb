package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpsend"
)

// Health reads the account resource (GET /2010-04-01/Accounts/{Sid}.json)
// with the configured credentials: it sends nothing and costs nothing, and
// proves Twilio is reachable, takes the auth token, and has the account
// active (not suspended or closed).
func (g *Gateway) Health(ctx context.Context) error {
	endpoint := g.base + "/2010-04-01/Accounts/" + url.PathEscape(g.cfg.AccountSID) + ".json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Reason: "config", Err: err}
	}
	req.SetBasicAuth(g.cfg.AccountSID, g.cfg.AuthToken)
	req.Header.Set("Accept", "application/json")
	resp, err := httpsend.Do(g.client, req, g.cfg.Name)
	if err != nil {
		return err
	}
	answer, err := httpsend.ReadBody(resp)
	if err != nil {
		return fmt.Errorf("%s: answer %d cut short: %w", g.cfg.Name, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		ge := g.classify(resp.StatusCode, decodeError(answer))
		detail := ge.Err.Error()
		if ge.Code != "" {
			detail += ", code " + ge.Code
		}
		if ge.Reason == "auth" {
			return fmt.Errorf("%s: Twilio refused the account SID and auth token (%s)", g.cfg.Name, detail)
		}
		return fmt.Errorf("%s: reading the account failed (%s: %s)", g.cfg.Name, ge.Reason, detail)
	}
	var account struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(answer, &account); err != nil || account.Status == "" {
		return fmt.Errorf("%s: the account answer has no status; is base_url Twilio's API?", g.cfg.Name)
	}
	if account.Status != "active" {
		return fmt.Errorf("%s: the account is %s, not active", g.cfg.Name, redact(account.Status))
	}
	return nil
}

func decodeError(answer []byte) apiError {
	var e apiError
	_ = json.Unmarshal(answer, &e)
	return e
}

package zettaireach

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpsend"
)

// TemplatePath is the provider's read of the contract's registered message
// templates (登録済み定型文取得).
const TemplatePath = "/p5/api/template.json"

// Health reads the registered templates (GET /p5/api/template.json with
// the query fields token and clientId, as the specification documents):
// it sends nothing and costs nothing, and proves the provider is reachable
// from here (its API IP restriction included) and takes the token and
// client ID.
func (g *Gateway) Health(ctx context.Context) error {
	q := url.Values{"token": {g.cfg.Token}, "clientId": {g.cfg.ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+TemplatePath+"?"+q.Encode(), nil)
	if err != nil {
		return &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Reason: "config", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := httpsend.Do(g.client, req, g.cfg.Name)
	if err != nil {
		return err
	}
	body, err := httpsend.ReadBody(resp)
	if err != nil {
		return fmt.Errorf("%s: answer %d cut short: %w", g.cfg.Name, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: reading the templates failed (%s)", g.cfg.Name, g.classifyHTTP(resp.StatusCode).Err)
	}
	var a answer
	if json.Unmarshal(body, &a) != nil || a.ResponseCode == nil {
		return fmt.Errorf("%s: the template answer has no responseCode; is base_url 絶対リーチ!SMS's API?", g.cfg.Name)
	}
	if *a.ResponseCode != 0 {
		ge := g.classify(*a.ResponseCode, a.ResponseMessage)
		if ge.Reason == "auth" {
			return fmt.Errorf("%s: the provider refused the token or client_id (%s)", g.cfg.Name, ge.Err)
		}
		return fmt.Errorf("%s: reading the templates failed (%s)", g.cfg.Name, ge.Err)
	}
	return nil
}

var _ otp.HealthChecker = (*Gateway)(nil)

package carrier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// DefaultTwilioBaseURL is Twilio's Lookup API.
const DefaultTwilioBaseURL = "https://lookups.twilio.com"

// TwilioConfig configures a Twilio lookup.
type TwilioConfig struct {
	// AccountSID ("AC...") and AuthToken authenticate each request (HTTP
	// basic auth).
	AccountSID string
	AuthToken  string
	// BaseURL replaces https://lookups.twilio.com, for tests. Plain http
	// only to a loopback host.
	BaseURL string
	// Timeout bounds one lookup. Default: DefaultTimeout.
	Timeout time.Duration
}

// Twilio looks numbers up with Twilio Lookup v2's Line Type Intelligence:
// GET {base}/v2/PhoneNumbers/{E164}?Fields=line_type_intelligence.
type Twilio struct {
	cfg    TwilioConfig
	base   string
	client *http.Client
}

// NewTwilio checks cfg and returns the lookup. It does not contact Twilio.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	if !strings.HasPrefix(cfg.AccountSID, "AC") || strings.ContainsAny(cfg.AccountSID, "/?#%: ") {
		return nil, errors.New("twilio lookup: the account SID must start with AC (find it on the Twilio console's dashboard)")
	}
	if cfg.AuthToken == "" {
		return nil, errors.New("twilio lookup: no auth token (find it next to the account SID on the Twilio console)")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultTwilioBaseURL
	}
	if _, err := checkURL("twilio lookup: base URL", base); err != nil {
		return nil, err
	}
	return &Twilio{cfg: cfg, base: strings.TrimRight(base, "/"), client: newClient(cfg.Timeout)}, nil
}

// CarrierScope implements otp.CarrierLookup: one account's answers.
func (t *Twilio) CarrierScope() string { return "twilio\x00" + t.cfg.AccountSID }

// twilioAnswer is the part of Lookup v2's answer read here.
type twilioAnswer struct {
	Valid *bool `json:"valid"`
	LTI   *struct {
		Type        *string `json:"type"`
		CarrierName string  `json:"carrier_name"`
		ErrorCode   *int    `json:"error_code"`
	} `json:"line_type_intelligence"`
}

// LookUpCarrier implements otp.CarrierLookup.
func (t *Twilio) LookUpCarrier(ctx context.Context, e164 string) (otp.CarrierAnswer, error) {
	u := t.base + "/v2/PhoneNumbers/" + url.PathEscape(e164) + "?Fields=line_type_intelligence"
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return otp.CarrierAnswer{}, fmt.Errorf("%w: twilio lookup: %w", otp.ErrCarrierLookup, err)
	}
	req.SetBasicAuth(t.cfg.AccountSID, t.cfg.AuthToken)
	req.Header.Set("Accept", "application/json")
	body, err := do(ctx, t.client, req, "twilio lookup")
	if err != nil {
		return otp.CarrierAnswer{}, err
	}
	var a twilioAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return otp.CarrierAnswer{}, fmt.Errorf("%w: twilio lookup: the answer is not the JSON of Lookup v2", otp.ErrCarrierLookup)
	}
	if a.Valid != nil && !*a.Valid {
		return otp.CarrierAnswer{Type: "invalid"}, nil
	}
	switch {
	case a.LTI == nil:
		return otp.CarrierAnswer{}, fmt.Errorf("%w: twilio lookup: no line_type_intelligence in the answer", otp.ErrCarrierLookup)
	case a.LTI.ErrorCode != nil:
		// 60601: a Canadian number without Twilio's approval, and others.
		return otp.CarrierAnswer{}, fmt.Errorf("%w: twilio lookup: line_type_intelligence error %d", otp.ErrCarrierLookup, *a.LTI.ErrorCode)
	case a.LTI.Type == nil:
		return otp.CarrierAnswer{Type: "unknown", Carrier: a.LTI.CarrierName}, nil
	}
	typ, err := lineType("twilio lookup", *a.LTI.Type)
	return otp.CarrierAnswer{Type: typ, Carrier: a.LTI.CarrierName}, err
}

package carrier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// HTTPConfig configures a lookup through an operator's own service.
type HTTPConfig struct {
	// URL takes the lookups: POST with the JSON body {"number":"+1..."}.
	// The number goes in the body, not the URL, so that it stays out of
	// access logs.
	URL string
	// Field is the path of the line type in the JSON answer: keys and
	// list indexes joined by dots ("type", "line_type_intelligence.type").
	Field string
	// HeaderName and HeaderValue, when set, go with each request: the
	// secret the service requires (Authorization, X-Api-Key ...).
	HeaderName, HeaderValue string
	// Timeout bounds one lookup. Default: DefaultTimeout.
	Timeout time.Duration
}

// HTTP looks numbers up through an operator's service. It answers 200 with
// a JSON object whose Field holds a line type: Twilio's names (mobile,
// landline, fixedVoip, nonFixedVoip, tollFree, premium, sharedCost, ...) or
// the policy's (mobile, fixed_line, voip, toll_free, ...), or "unknown".
// Anything else fails the lookup: another status, a redirect (never
// followed), a missing field, a type no one knows.
type HTTP struct {
	cfg    HTTPConfig
	field  []string
	client *http.Client
}

// NewHTTP checks cfg and returns the lookup. It does not contact the service.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	if _, err := checkURL("http lookup: url", cfg.URL); err != nil {
		return nil, err
	}
	field := strings.Split(cfg.Field, ".")
	for _, k := range field {
		if k == "" {
			return nil, fmt.Errorf("http lookup: field %q: expected keys joined by dots, such as type or line_type_intelligence.type", cfg.Field)
		}
	}
	if (cfg.HeaderName == "") != (cfg.HeaderValue == "") {
		return nil, errors.New("http lookup: header: expected a name and a value, such as header Authorization \"Bearer {env.LOOKUP_TOKEN}\"")
	}
	if cfg.HeaderName != "" && strings.ContainsAny(cfg.HeaderName, " \t\r\n:") {
		return nil, fmt.Errorf("http lookup: header name %q: expected a header name such as X-Api-Key", cfg.HeaderName)
	}
	return &HTTP{cfg: cfg, field: field, client: newClient(cfg.Timeout)}, nil
}

// CarrierScope implements otp.CarrierLookup: one URL and field (a hash, so
// the secret header is not part of it).
func (h *HTTP) CarrierScope() string {
	sum := sha256.Sum256([]byte(strconv.Quote(h.cfg.URL) + strconv.Quote(h.cfg.Field)))
	return "http\x00" + hex.EncodeToString(sum[:])
}

// LookUpCarrier implements otp.CarrierLookup.
func (h *HTTP) LookUpCarrier(ctx context.Context, e164 string) (otp.CarrierAnswer, error) {
	body, _ := json.Marshal(map[string]string{"number": e164})
	req, err := http.NewRequest(http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return otp.CarrierAnswer{}, fmt.Errorf("%w: http lookup: %w", otp.ErrCarrierLookup, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if h.cfg.HeaderName != "" {
		req.Header.Set(h.cfg.HeaderName, h.cfg.HeaderValue)
	}
	answer, err := do(ctx, h.client, req, "http lookup")
	if err != nil {
		return otp.CarrierAnswer{}, err
	}
	name, err := readString(answer, h.field)
	if err != nil {
		return otp.CarrierAnswer{}, fmt.Errorf("%w: http lookup: %w", otp.ErrCarrierLookup, err)
	}
	typ, err := lineType("http lookup", name)
	return otp.CarrierAnswer{Type: typ}, err
}

// readString finds the string at path in a JSON answer.
func readString(body []byte, path []string) (string, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "", errors.New("the answer is not JSON")
	}
	for i, key := range path {
		switch node := v.(type) {
		case map[string]any:
			v = node[key]
		case []any:
			n, err := strconv.Atoi(key)
			if err != nil || n < 0 || n >= len(node) {
				return "", fmt.Errorf("%s has no item %q", strings.Join(path[:i], "."), key)
			}
			v = node[n]
		default:
			return "", fmt.Errorf("no field %s in the answer", strings.Join(path, "."))
		}
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %s of the answer is missing or not a string", strings.Join(path, "."))
	}
	return s, nil
}

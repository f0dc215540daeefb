package zettaireach

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// dlrPush is the provider's DLR push (DLRPushJSON): one HTTPS POST per push
// to the one address registered with the provider, the JSON URL-encoded in
// the form field "json".
type dlrPush struct {
	EventNotifications []dlrEvent `json:"eventNotifications"`
}

// dlrEvent is one delivery result. The specification documents statusId and
// detailedStatusId as strings in one place and numbers in another, so both
// are read as raw JSON.
type dlrEvent struct {
	Type             string          `json:"type"`
	MessageID        string          `json:"messageId"`
	ClientTag        string          `json:"clientTag"`
	StatusID         json.RawMessage `json:"statusId"`
	DetailedStatusID json.RawMessage `json:"detailedStatusId"`
}

// ParseReceipt implements otp.ReceiptParser for the DLR push. The provider
// posts every result to one registered address and does not sign it; what
// ties a result to a message, and proves it came from someone who saw the
// request, is the clientTag, which this gateway sets to the message's
// sealed receipt token and returns as Receipt.Token. A push carrying more
// than one result is refused (the provider retries it three times), since
// one report records one message.
//
// statusId: 0 Unknown, 1 Message is Sending, 2 Message delivered, 3
// Message delivery failed. detailedStatusId (the carrier module and
// cause of a failure) is passed on as the error code.
func (g *Gateway) ParseReceipt(r *http.Request, _ string) (otp.Receipt, error) {
	if r.Method != http.MethodPost {
		return otp.Receipt{}, fmt.Errorf("zettai_reach receipt: method %s, expected POST", r.Method)
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return otp.Receipt{}, fmt.Errorf("zettai_reach receipt: %w", err)
	}
	raw := r.PostForm.Get("json")
	if raw == "" {
		return otp.Receipt{}, errors.New("zettai_reach receipt: no json field (is the DLR push set to JSON, not XML?)")
	}
	var push dlrPush
	if err := json.Unmarshal([]byte(raw), &push); err != nil {
		return otp.Receipt{}, fmt.Errorf("zettai_reach receipt: json field: %w", err)
	}
	if len(push.EventNotifications) != 1 {
		return otp.Receipt{}, fmt.Errorf("zettai_reach receipt: %d eventNotifications, expected one", len(push.EventNotifications))
	}
	ev := push.EventNotifications[0]
	if ev.Type != "DLR" || ev.ClientTag == "" {
		return otp.Receipt{}, errors.New("zettai_reach receipt: expected type DLR and a clientTag")
	}
	rep := otp.Receipt{Gateway: g.cfg.Name, ID: ev.MessageID, Token: ev.ClientTag}
	switch unquote(ev.StatusID) {
	case "0", "1":
		rep.Status = otp.DeliverySent
	case "2":
		rep.Status = otp.DeliveryDelivered
	case "3":
		rep.Status = otp.DeliveryFailed
		rep.Error = unquote(ev.DetailedStatusID)
	default:
		return otp.Receipt{}, fmt.Errorf("zettai_reach receipt: unknown statusId %s", string(ev.StatusID))
	}
	return rep, nil
}

// unquote reads a JSON string or number as its text.
func unquote(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

var _ otp.ReceiptParser = (*Gateway)(nil)

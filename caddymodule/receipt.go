package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// receipt takes a provider's delivery report at
// {prefix}/receipt/{gateway}/{token}.
func (h *Handler) receipt(w http.ResponseWriter, r *http.Request, rest string) error {
	name, token, _ := strings.Cut(rest, "/")
	parser := h.receipts[name]
	if parser == nil || token == "" || h.service.Config().ReceiptBase == "" {
		return caddyhttp.Error(http.StatusNotFound, errors.New("no such receipt endpoint"))
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	report, err := parser.ParseReceipt(r, h.service.Config().ReceiptBase+"/"+name+"/"+token)
	if err != nil {
		h.audit(zapcore.WarnLevel, "delivery report refused", "receipt_refused", zap.String("gateway", name),
			zap.String("client_ip", clientIP(r)), zap.Error(err))
		return caddyhttp.Error(http.StatusForbidden, errors.New("delivery report refused"))
	}
	if report.Token != "" {
		// A provider that reports to one registered address names the
		// message in the report itself.
		token = report.Token
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	subject, challengeID, ok, err := h.service.RecordDelivery(ctx, token, report.Status)
	switch {
	case !ok:
		h.audit(zapcore.WarnLevel, "delivery report with a token we did not make", "receipt_refused", zap.String("gateway", name), zap.String("client_ip", clientIP(r)))
		return caddyhttp.Error(http.StatusNotFound, errors.New("no such receipt"))
	case err != nil:
		h.audit(zapcore.ErrorLevel, "store unavailable: delivery report not recorded", "store_unavailable", zap.Error(err))
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	h.audit(zapcore.InfoLevel, "delivery report", "delivery", zap.String("gateway", name),
		zap.String("status", string(report.Status)), zap.String("identity", subject), zap.String("challenge", shortString(challengeID)),
		zap.String("provider_ref", report.ID), zap.String("provider_error", report.Error))
	w.WriteHeader(http.StatusOK)
	return nil
}

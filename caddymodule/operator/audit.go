package operator

import (
	"cmp"
	"context"
	"os"
	"os/user"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// actor runs actions on one handler for one operator. Each action that
// changes something writes one audit entry (logger sms_stepup.operator,
// field event "operator_<action>") with what its result records (the
// identity, the masked number where there is one ...) and who acted;
// never a code or a full number. The command line acts on a handler it
// provisions (store redis), the admin API on the running handler (store
// memory); their errors read the same either way.
type actor struct {
	h     Handler
	audit *zap.Logger
	// who names the operator in audit entries ($USER for the command line).
	who string
	// via is how the action came: "command_line" or "admin_api"; clientIP
	// is the admin API client's address.
	via, clientIP string
}

// perform runs a on the actor's handler and writes its audit entry.
func (o *actor) perform(ctx context.Context, a *action, req request) (result, error) {
	res, err := a.run(ctx, o.h, req)
	if a.audit != "" {
		o.record(a, res, err)
	}
	return res, err
}

// record writes the audit entry of one action: at info level when it was
// done, at warn level with the error when it was not.
func (o *actor) record(a *action, res result, err error) {
	var fields []zap.Field
	if r, ok := res.(audited); ok {
		fields = r.auditFields()
	}
	fields = append(fields, zap.String("event", "operator_"+strings.ReplaceAll(a.name, "-", "_")), zap.String("operator", o.who),
		zap.String("handler", o.h.Prefix()), zap.String("via", cmp.Or(o.via, "command_line")))
	if o.clientIP != "" {
		fields = append(fields, zap.String("client_ip", o.clientIP))
	}
	level, msg := zapcore.InfoLevel, a.audit
	if err != nil {
		level, msg = zapcore.WarnLevel, "operator "+a.name+" failed"
		fields = append(fields, zap.String("result", "failed"), zap.Error(err))
	} else {
		fields = append(fields, zap.String("result", "ok"))
	}
	if ce := o.audit.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
}

// operatorName is who runs the command line: $USER, else the account's
// name, else "unknown".
func operatorName() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// operatorLog names the logger of operator audit entries, so Caddy's
// logging config can include or exclude them like a module's logs.
type operatorLog struct{}

func (operatorLog) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sms_stepup.operator", New: func() caddy.Module { return operatorLog{} }}
}

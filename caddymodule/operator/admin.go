package operator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the operator actions (actions.go) on Caddy's admin
// endpoint, one route each, so that they reach a handler whose state lives inside the
// running Caddy: the memory store. The command line uses it by itself for
// such a handler; anyone who may use the admin endpoint can call it too.
// Caddy loads it with every config, and its origin and host checks (and
// the access controls of a remote admin endpoint) apply as to any admin
// route.
//
//	POST /sms-stepup/unlock        {"identity": "alice"}
//	POST /sms-stepup/revoke        {"identity": "alice"}
//	POST /sms-stepup/reset-number  {"identity": "alice"}
//	POST /sms-stepup/reset-budget  {}
//	POST /sms-stepup/send-test     {"to": "090-1234-5678", "locale": "ja"}
//	GET  /sms-stepup/status[?identity=alice][&locked=10]
//
// Each names the handler by its path_prefix ("handler": "/_stepup", or the
// query parameter handler=; default /_stepup), and may add "config": the
// fingerprint of the handler's config as the command line read it, which
// picks the right one among several handlers with the same path_prefix
// and tells whether the running config is the one in the file. "operator"
// names who acts, for the audit entry (the command line sends $USER).
// POST bodies are JSON (Content-Type: application/json), and changes are
// POSTs only.
//
// The answer is {"handler": ..., "config_matches": ..., "result": ...} with
// what the command printed as JSON, or a 4xx/5xx {"error": "..."} saying
// what is wrong. Each change writes the same audit entry as the command
// line (logger sms_stepup.operator), with via "admin_api" and the client's
// IP.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sms_stepup",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// adminBase is where the routes live on the admin endpoint.
const adminBase = "/sms-stepup/"

// adminTimeout bounds one operation when the client sets no deadline of its
// own (the command line's --timeout closes the connection sooner).
const adminTimeout = time.Minute

// Routes returns the admin routes of the operator actions.
func (api *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminBase, Handler: caddy.AdminHandlerFunc(api.serve)}}
}

// adminReply is the answer to a request that worked.
type adminReply struct {
	// Handler is the path_prefix of the handler that acted.
	Handler string `json:"handler"`
	// ConfigMatches says, when the request gave a config fingerprint,
	// whether the running handler was loaded from that config.
	ConfigMatches *bool  `json:"config_matches,omitempty"`
	Result        result `json:"result"`
}

func adminError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// serve answers one request under /sms-stepup/: the route of an action of
// the table. Every failure is an APIError, which Caddy's admin endpoint
// writes as {"error": "..."}.
func (api *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	a, ok := actionNamed(strings.TrimPrefix(r.URL.Path, adminBase))
	if !ok {
		return adminError(http.StatusNotFound, "%s: no such sms_stepup admin route; expected %s", r.URL.Path, routeList())
	}
	req, err := readAdminRequest(w, r, a)
	if err != nil {
		return err
	}
	if msg := a.problem(req, apiWords); msg != "" {
		return adminError(http.StatusBadRequest, "%s", msg)
	}

	entry, matches, err := caddymodule.FindLive(req.Handler, req.Config)
	if err != nil {
		return err
	}
	defer entry.Release()
	h := entry.Handler()

	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	// Unloading the handler's config cancels what it is doing for us, so
	// that unloading never waits long on an operation.
	defer context.AfterFunc(entry.Context(), cancel)()

	op := &actor{h: h, audit: entry.Context().Logger(operatorLog{}), who: cmp.Or(req.Operator, "unknown"), via: "admin_api", clientIP: remoteIP(r)}
	res, err := op.perform(ctx, a, req)
	// A result that reports its own failure (the status of a store that
	// can't be read) is the answer all the same.
	if _, ok := res.(selfReporting); err != nil && !ok {
		return adminFailure(w, err, entry)
	}
	reply := adminReply{Handler: h.Prefix(), Result: res}
	if req.Config != "" {
		reply.ConfigMatches = &matches
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(reply)
}

// routeList names the routes: "POST /sms-stepup/unlock, revoke ... or GET
// /sms-stepup/status".
func routeList() string {
	byMethod := map[string][]string{}
	for _, a := range actions {
		byMethod[a.method()] = append(byMethod[a.method()], a.name)
	}
	return fmt.Sprintf("POST %s%s or GET %s%s", adminBase, strings.Join(byMethod[http.MethodPost], ", "),
		adminBase, strings.Join(byMethod[http.MethodGet], ", "))
}

// readAdminRequest reads the request of a's route: a JSON body for a POST,
// the query for a GET.
func readAdminRequest(w http.ResponseWriter, r *http.Request, a *action) (request, error) {
	method := a.method()
	if r.Method != method && (method != http.MethodGet || r.Method != http.MethodHead) {
		w.Header().Set("Allow", method)
		if method == http.MethodPost {
			return request{}, adminError(http.StatusMethodNotAllowed, "%s %s: %s changes state, so it takes POST only (with a JSON body)", r.Method, r.URL.Path, a.name)
		}
		return request{}, adminError(http.StatusMethodNotAllowed, "%s %s: %s takes GET only", r.Method, r.URL.Path, a.name)
	}
	if method == http.MethodPost {
		return readAdminBody(w, r, a)
	}
	return readAdminQuery(r.URL.Query(), a)
}

// adminFailure turns an action's error into an APIError with a status
// that says whose fault it is. The message is the one the command line
// prints.
func adminFailure(w http.ResponseWriter, err error, entry *caddymodule.LiveHandler) error {
	err = explainStoreError(err, entry.Handler(), 0)
	status := http.StatusInternalServerError
	var rl *otp.RateLimitError
	var refusal *otp.PhoneRefusal
	switch {
	case errors.Is(err, otp.ErrNoBoundPhone):
		status = http.StatusNotFound
	case errors.As(err, &rl):
		status = http.StatusTooManyRequests
		if secs := int(time.Until(rl.RetryAt).Round(time.Second) / time.Second); secs > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(secs))
		}
	case errors.As(err, &refusal):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, otp.ErrStoreUnavailable):
		status = http.StatusServiceUnavailable
	case errors.Is(err, otp.ErrSendFailed):
		status = http.StatusBadGateway
	case entry.Context().Err() != nil:
		status = http.StatusServiceUnavailable
		err = fmt.Errorf("the config of handler %s was unloaded (a reload or stop) while it acted; try again: %w", entry.Handler().Prefix(), err)
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	}
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// maxAdminBody bounds a request body; the largest real one is well under
// a kilobyte.
const maxAdminBody = 64 << 10

func readAdminBody(w http.ResponseWriter, r *http.Request, a *action) (request, error) {
	var req request
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return req, adminError(http.StatusUnsupportedMediaType, "Content-Type %q: expected application/json, with a JSON object body such as %s", r.Header.Get("Content-Type"), a.exampleBody())
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return req, adminError(http.StatusBadRequest, "empty body: expected a JSON object such as %s", a.exampleBody())
	case errors.As(err, &tooBig):
		return req, adminError(http.StatusRequestEntityTooLarge, "body over %d bytes: expected a small JSON object", maxAdminBody)
	case err != nil:
		// The decoder's message names the field or offset, never the
		// value, so a phone number in the body stays out of the log.
		return req, adminError(http.StatusBadRequest, "bad JSON body: %v; expected an object with %s", err, names(a.accepts(), ""))
	}
	return req, nil
}

func readAdminQuery(q url.Values, a *action) (request, error) {
	var req request
	accepted := a.accepts()
	for key, vals := range q {
		f := fieldNamed(accepted, key)
		if f == nil {
			return req, adminError(http.StatusBadRequest, "unknown query parameter %q: expected %s", key, names(accepted, "or"))
		}
		if len(vals) != 1 {
			return req, adminError(http.StatusBadRequest, "query parameter %s given %d times: expected once", key, len(vals))
		}
		if want := f.assign(&req, vals[0]); want != "" {
			return req, adminError(http.StatusBadRequest, "%s=%q: expected %s", key, vals[0], want)
		}
	}
	return req, nil
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Interface guards.
var _ caddy.AdminRouter = (*adminAPI)(nil)

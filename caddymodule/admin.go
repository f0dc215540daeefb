package caddymodule

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the operator commands of `caddy sms-stepup` on Caddy's
// admin endpoint, so that they reach a handler whose state lives inside the
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

// Routes returns the admin routes of the operator commands.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminBase, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminRequest is the JSON body of a POST (and, as query parameters, of
// status).
type adminRequest struct {
	Handler  string `json:"handler,omitempty"`
	Config   string `json:"config,omitempty"`
	Operator string `json:"operator,omitempty"`
	Identity string `json:"identity,omitempty"`
	To       string `json:"to,omitempty"`
	Locale   string `json:"locale,omitempty"`
	// Locked is how many locked identities status lists.
	Locked *int `json:"locked,omitempty"`
}

// adminReply is the answer to a request that worked.
type adminReply struct {
	// Handler is the path_prefix of the handler that acted.
	Handler string `json:"handler"`
	// ConfigMatches says, when the request gave a config fingerprint,
	// whether the running handler was loaded from that config.
	ConfigMatches *bool `json:"config_matches,omitempty"`
	Result        any   `json:"result"`
}

// The results of the changes; status answers with operatorStatus or
// identityStatus.
type (
	unlockResult struct {
		Identity string `json:"identity"`
	}
	revokeResult struct {
		Identity  string    `json:"identity"`
		NotBefore time.Time `json:"not_before"`
		// RevocationRefresh is a Go duration ("10s"): how long other
		// instances sharing the store may take to apply it.
		RevocationRefresh string `json:"revocation_refresh"`
	}
	resetNumberResult struct {
		Identity string `json:"identity"`
		Phone    string `json:"phone"`
	}
	resetBudgetResult struct {
		// Max 0: no daily budget is configured.
		Max        int `json:"max"`
		UsedBefore int `json:"used_before"`
	}
)

// adminActions are the routes: the method each takes, and which request
// fields it needs or takes.
var adminActions = map[string]struct {
	method               string
	identity, to, locked string // "required", "optional" or "" (refused)
}{
	"unlock":       {method: http.MethodPost, identity: "required"},
	"revoke":       {method: http.MethodPost, identity: "required"},
	"reset-number": {method: http.MethodPost, identity: "required"},
	"reset-budget": {method: http.MethodPost},
	"send-test":    {method: http.MethodPost, to: "required"},
	"status":       {method: http.MethodGet, identity: "optional", locked: "optional"},
}

func adminError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// serve answers one request under /sms-stepup/. Every failure is an
// APIError, which Caddy's admin endpoint writes as {"error": "..."}.
func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, adminBase)
	action, ok := adminActions[name]
	if !ok {
		return adminError(http.StatusNotFound, "%s: no such sms_stepup admin route; expected POST %sunlock, revoke, reset-number, reset-budget, send-test or GET %sstatus",
			r.URL.Path, adminBase, adminBase)
	}
	if r.Method != action.method && (action.method != http.MethodGet || r.Method != http.MethodHead) {
		w.Header().Set("Allow", action.method)
		if action.method == http.MethodPost {
			return adminError(http.StatusMethodNotAllowed, "%s %s: %s changes state, so it takes POST only (with a JSON body)", r.Method, r.URL.Path, name)
		}
		return adminError(http.StatusMethodNotAllowed, "%s %s: %s takes GET only", r.Method, r.URL.Path, name)
	}
	var req adminRequest
	var err error
	if action.method == http.MethodPost {
		req, err = readAdminBody(w, r)
	} else {
		req, err = readAdminQuery(r.URL.Query())
	}
	if err != nil {
		return err
	}
	if err := checkAdminFields(name, req, action.identity, action.to, action.locked); err != nil {
		return err
	}

	entry, matches, err := live.find(req.Handler, req.Config)
	if err != nil {
		return err
	}
	defer entry.release()

	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	// Unloading the handler's config cancels what it is doing for us, so
	// that unloading never waits long on an operation.
	defer context.AfterFunc(entry.ctx, cancel)()

	op := &operator{h: entry.h, audit: entry.ctx.Logger(operatorLog{}), who: cmp.Or(req.Operator, "unknown"), via: "admin_api", clientIP: remoteIP(r)}
	result, err := runAdminAction(ctx, op, name, req)
	// The status of a store that can't be read says so itself
	// (store.reachable false, store.error): the answer is the status.
	if err != nil && (name != "status" || req.Identity != "") {
		return adminFailure(w, err, entry)
	}
	reply := adminReply{Handler: entry.h.PathPrefix, Result: result}
	if req.Config != "" {
		reply.ConfigMatches = &matches
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(reply)
}

// runAdminAction calls the operator method of the route, the one the
// command line calls.
func runAdminAction(ctx context.Context, op *operator, name string, req adminRequest) (any, error) {
	switch name {
	case "unlock":
		return unlockResult{Identity: req.Identity}, op.Unlock(ctx, req.Identity)
	case "revoke":
		nb, refresh, err := op.Revoke(ctx, req.Identity)
		return revokeResult{Identity: req.Identity, NotBefore: nb.UTC(), RevocationRefresh: refresh.String()}, err
	case "reset-number":
		masked, err := op.ResetNumber(ctx, req.Identity)
		return resetNumberResult{Identity: req.Identity, Phone: masked}, err
	case "reset-budget":
		before, err := op.ResetBudget(ctx)
		return resetBudgetResult{Max: before.Max, UsedBefore: before.Used}, err
	case "send-test":
		return op.SendTest(ctx, req.To, cmp.Or(req.Locale, otp.Locales[0]))
	case "status":
		if req.Identity != "" {
			return op.IdentityStatus(ctx, req.Identity)
		}
		locked := 10
		if req.Locked != nil {
			locked = *req.Locked
		}
		return op.Status(ctx, locked)
	}
	return nil, adminError(http.StatusNotFound, "no such action %q", name)
}

// adminFailure turns an operator error into an APIError with a status that
// says whose fault it is. The message is the one the command line prints.
func adminFailure(w http.ResponseWriter, err error, entry *liveHandler) error {
	err = explainStoreError(err, entry.h.store, 0)
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
	case entry.ctx.Err() != nil:
		status = http.StatusServiceUnavailable
		err = fmt.Errorf("the config of handler %s was unloaded (a reload or stop) while it acted; try again: %w", entry.h.PathPrefix, err)
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	}
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// maxAdminBody bounds a request body; the largest real one is well under
// a kilobyte.
const maxAdminBody = 64 << 10

func readAdminBody(w http.ResponseWriter, r *http.Request) (adminRequest, error) {
	var req adminRequest
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return req, adminError(http.StatusUnsupportedMediaType, "Content-Type %q: expected application/json, with a JSON object body such as {\"identity\": \"alice\"}", r.Header.Get("Content-Type"))
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
		return req, adminError(http.StatusBadRequest, "empty body: expected a JSON object such as {\"identity\": \"alice\"} ({} for reset-budget)")
	case errors.As(err, &tooBig):
		return req, adminError(http.StatusRequestEntityTooLarge, "body over %d bytes: expected a small JSON object", maxAdminBody)
	case err != nil:
		// The decoder's message names the field or offset, never the
		// value, so a phone number in the body stays out of the log.
		return req, adminError(http.StatusBadRequest, "bad JSON body: %v; expected an object with handler, config, operator, identity, to, locale", err)
	}
	return req, nil
}

func readAdminQuery(q url.Values) (adminRequest, error) {
	var req adminRequest
	for key, vals := range q {
		if len(vals) != 1 {
			return req, adminError(http.StatusBadRequest, "query parameter %s given %d times: expected once", key, len(vals))
		}
		v := vals[0]
		switch key {
		case "handler":
			req.Handler = v
		case "config":
			req.Config = v
		case "operator":
			req.Operator = v
		case "identity":
			req.Identity = v
		case "locked":
			n, err := strconv.Atoi(v)
			if err != nil {
				return req, adminError(http.StatusBadRequest, "locked=%q: expected a number", v)
			}
			req.Locked = &n
		default:
			return req, adminError(http.StatusBadRequest, "unknown query parameter %q: expected handler, config, identity or locked", key)
		}
	}
	return req, nil
}

// maxLockedListed bounds status's list of locked identities.
const maxLockedListed = 1000

// checkAdminFields checks the request's fields against what the action
// takes ("required", "optional" or "" for none).
func checkAdminFields(name string, req adminRequest, identity, to, locked string) error {
	for _, f := range []struct {
		field, value, want, example string
	}{
		{"identity", req.Identity, identity, `"identity": "alice"`},
		{"to", req.To, to, `"to": "090-1234-5678"`},
	} {
		switch {
		case f.want == "required" && strings.TrimSpace(f.value) == "":
			return adminError(http.StatusBadRequest, "%s needs %s, e.g. {%s}", name, f.field, f.example)
		case f.want == "" && f.value != "":
			return adminError(http.StatusBadRequest, "%s takes no %s", name, f.field)
		}
	}
	if req.Locale != "" && name != "send-test" {
		return adminError(http.StatusBadRequest, "%s takes no locale", name)
	}
	if req.Locale != "" && !slices.Contains(otp.Locales, req.Locale) {
		return adminError(http.StatusBadRequest, "locale %q: expected %s", req.Locale, strings.Join(otp.Locales, " or "))
	}
	if req.Locked != nil && (locked == "" || *req.Locked < 0 || *req.Locked > maxLockedListed) {
		if locked == "" {
			return adminError(http.StatusBadRequest, "%s takes no locked", name)
		}
		return adminError(http.StatusBadRequest, "locked %d: expected 0 to %d", *req.Locked, maxLockedListed)
	}
	for _, f := range []struct{ field, value string }{{"identity", req.Identity}, {"operator", req.Operator}, {"handler", req.Handler}, {"config", req.Config}, {"to", req.To}} {
		if len(f.value) > 1024 || !utf8.ValidString(f.value) || strings.IndexFunc(f.value, unicode.IsControl) >= 0 {
			return adminError(http.StatusBadRequest, "%s: expected printable UTF-8 text of at most 1024 bytes", f.field)
		}
	}
	return nil
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// live is every sms_stepup handler of a loaded config in this process: the
// registry through which the admin API finds the running handler.
//
// A handler joins it when its Provision succeeds (registerLive, deferred
// at the top of Handler.Provision) and leaves it when its config is
// unloaded: Caddy cancels a config's context, at a reload, a stop or a
// failed load, before it cleans up any module of it. A handler whose
// context is cancelled is never handed out, and leaving waits for the
// operations in flight on it, which that same cancellation ends.
//
// Handlers are found by path_prefix plus the fingerprint of their config.
// Among those that match, the newest provisioned wins: during a reload the
// new config's handler, not the old one's that is about to go.
var live liveRegistry

type liveRegistry struct {
	mu      sync.Mutex
	seq     uint64
	entries []*liveHandler // in the order they were provisioned
}

// liveHandler is one registered handler.
type liveHandler struct {
	h   *Handler
	ctx caddy.Context
	// config is the fingerprint of the handler's config as given.
	config string
	seq    uint64

	// ops is held for reading by each operation on the handler, and for
	// writing by leave, which marks it gone.
	ops  sync.RWMutex
	gone bool
}

// registerLive adds h, provisioned in ctx, to the registry, until ctx is
// cancelled. It is deferred at the top of Provision, so config is the
// fingerprint of the config as given (before Provision fills in defaults
// and Caddy drops the raw JSON of the store and gateway), and it adds h
// only if Provision got to the end (h.service is set last). A context
// that can't be cancelled is not Caddy's and is ignored.
func registerLive(ctx caddy.Context, h *Handler, config string) {
	if h.service == nil || ctx.Context == nil || ctx.Done() == nil || ctx.Err() != nil {
		return
	}
	e := &liveHandler{h: h, ctx: ctx, config: config}
	live.mu.Lock()
	live.seq++
	e.seq = live.seq
	live.entries = append(live.entries, e)
	live.mu.Unlock()
	context.AfterFunc(ctx, func() { live.leave(e) })
}

// leave marks e gone once its operations in flight are over and drops it.
func (r *liveRegistry) leave(e *liveHandler) {
	e.ops.Lock()
	e.gone = true
	e.ops.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range r.entries {
		if x == e {
			r.entries = append(r.entries[:i], r.entries[i+1:]...)
			return
		}
	}
}

// release ends an operation on e.
func (e *liveHandler) release() { e.ops.RUnlock() }

// usable reports whether e's config is still loaded.
func (e *liveHandler) usable() bool { return !e.gone && e.ctx.Err() == nil }

// find returns the handler for path_prefix prefix (default /_stepup) and
// config fingerprint config (optional), held for one operation: call
// release when done. matches says whether it was loaded from that config.
// The choice:
//
//   - the newest handler with that path_prefix and that config;
//   - else the newest with that path_prefix, unless another one of its
//     own config has the same path_prefix (ambiguous: 409);
//   - none with that path_prefix: 404, naming the ones there are.
func (r *liveRegistry) find(prefix, config string) (*liveHandler, bool, error) {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		prefix = DefaultPathPrefix
	}
	for {
		e, matches, err := r.pick(prefix, config)
		if err != nil {
			return nil, false, err
		}
		e.ops.RLock()
		if e.usable() {
			return e, matches, nil
		}
		// Its config was unloaded between the pick and now: pick again.
		e.ops.RUnlock()
	}
}

func (r *liveRegistry) pick(prefix, config string) (*liveHandler, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var same []*liveHandler
	running := map[string]bool{}
	for _, e := range r.entries {
		if e.ctx.Err() != nil {
			continue
		}
		running[e.h.PathPrefix] = true
		if e.h.PathPrefix == prefix {
			same = append(same, e)
		}
	}
	if len(same) == 0 {
		if len(running) == 0 {
			return nil, false, adminError(http.StatusNotFound, "no sms_stepup handler is running in this Caddy (is the config with sms_stepup loaded?)")
		}
		return nil, false, adminError(http.StatusNotFound, "no running sms_stepup handler has path_prefix %s; the running ones have %s",
			prefix, strings.Join(slices.Sorted(maps.Keys(running)), ", "))
	}
	if config != "" {
		for i := len(same) - 1; i >= 0; i-- {
			if same[i].config == config {
				return same[i], true, nil
			}
		}
	}
	newest := same[len(same)-1]
	siblings := 0
	for _, e := range same {
		if e.ctx.Done() == newest.ctx.Done() {
			siblings++
		}
	}
	if siblings > 1 {
		if config != "" {
			return nil, false, adminError(http.StatusConflict, "%d running sms_stepup handlers have path_prefix %s, and none was loaded from the config given (it changed since the last reload?): reload Caddy with it, or give the handlers distinct path_prefix values",
				siblings, prefix)
		}
		return nil, false, adminError(http.StatusConflict, "%d running sms_stepup handlers have path_prefix %s: give \"config\", the fingerprint of the handler's config (as the command line does), or give them distinct path_prefix values",
			siblings, prefix)
	}
	return newest, false, nil
}

// configFingerprint identifies a handler's config as given: the SHA-256
// (first 16 bytes, hex) of its JSON as a Handler re-encodes it, with the
// keys of every object sorted (the raw JSON of the store, gateway and
// matchers included), so the same config read by the command line and by
// the server gives the same fingerprint however its JSON was spaced or
// ordered. It never shows the config itself (which may hold a signing key).
func configFingerprint(h *Handler) string {
	b, err := json.Marshal(h)
	if err != nil {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return ""
	}
	if b, err = json.Marshal(v); err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Interface guards.
var _ caddy.AdminRouter = (*adminAPI)(nil)

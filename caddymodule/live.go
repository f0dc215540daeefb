package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

// live is every sms_stepup handler of a loaded config in this process: the
// registry through which the operator actions of the admin API (package
// caddymodule/operator) find the running handler, with FindLive.
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
	entries []*LiveHandler // in the order they were provisioned
}

// LiveHandler is one registered handler, as FindLive hands it out: held
// for one operation, which its Release ends.
type LiveHandler struct {
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
	e := &LiveHandler{h: h, ctx: ctx, config: config}
	live.mu.Lock()
	live.seq++
	e.seq = live.seq
	live.entries = append(live.entries, e)
	live.mu.Unlock()
	context.AfterFunc(ctx, func() { live.leave(e) })
}

// leave marks e gone once its operations in flight are over and drops it.
func (r *liveRegistry) leave(e *LiveHandler) {
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

// Release ends the operation on e: the unloading of its config waits for
// it.
func (e *LiveHandler) Release() { e.ops.RUnlock() }

// Handler is the running handler.
func (e *LiveHandler) Handler() *Handler { return e.h }

// Context is the context of the handler's config: it is cancelled when the
// config unloads, and its logger writes to Caddy's log as the running
// config sets it up.
func (e *LiveHandler) Context() caddy.Context { return e.ctx }

// usable reports whether e's config is still loaded.
func (e *LiveHandler) usable() bool { return !e.gone && e.ctx.Err() == nil }

// FindLive returns the running handler for path_prefix prefix (default
// /_stepup) and config fingerprint config (optional), held for one
// operation: call Release when done. matches says whether it was loaded
// from that config. Its errors are caddy.APIError, with the status the
// admin API answers (404: no such handler; 409: several).
func FindLive(prefix, config string) (e *LiveHandler, matches bool, err error) {
	return live.find(prefix, config)
}

// find returns the handler for path_prefix prefix (default /_stepup) and
// config fingerprint config (optional), held for one operation: call
// Release when done. matches says whether it was loaded from that config.
// The choice:
//
//   - the newest handler with that path_prefix and that config;
//   - else the newest with that path_prefix, unless another one of its
//     own config has the same path_prefix (ambiguous: 409);
//   - none with that path_prefix: 404, naming the ones there are.
func (r *liveRegistry) find(prefix, config string) (*LiveHandler, bool, error) {
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

func (r *liveRegistry) pick(prefix, config string) (*LiveHandler, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var same []*LiveHandler
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
			return nil, false, runningError(http.StatusNotFound, "no sms_stepup handler is running in this Caddy (is the config with sms_stepup loaded?)")
		}
		return nil, false, runningError(http.StatusNotFound, "no running sms_stepup handler has path_prefix %s; the running ones have %s",
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
			return nil, false, runningError(http.StatusConflict, "%d running sms_stepup handlers have path_prefix %s, and none was loaded from the config given (it changed since the last reload?): reload Caddy with it, or give the handlers distinct path_prefix values",
				siblings, prefix)
		}
		return nil, false, runningError(http.StatusConflict, "%d running sms_stepup handlers have path_prefix %s: give \"config\", the fingerprint of the handler's config (as the command line does), or give them distinct path_prefix values",
			siblings, prefix)
	}
	return newest, false, nil
}

// runningError is a registry failure as the admin API answers it.
func runningError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// ConfigFingerprint identifies a handler's config as given: the SHA-256
// (first 16 bytes, hex) of its JSON as a Handler re-encodes it, with the
// keys of every object sorted (the raw JSON of the store, gateway and
// matchers included), so the same config read by the command line and by
// the server gives the same fingerprint however its JSON was spaced or
// ordered. It never shows the config itself (which may hold a signing key).
// The command line names the handler of the config it read by it.
func ConfigFingerprint(h *Handler) string {
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

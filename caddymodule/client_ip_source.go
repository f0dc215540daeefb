package caddymodule

import (
	"context"
	"reflect"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Where the client IP comes from (SECURITY.md rule 12). The per-IP send
// limit, the risk signals and the audit log use Caddy's client IP. Behind
// a proxy in trusted_proxies, Caddy reads it from X-Forwarded-For (or the
// server's client_ip_headers); without trusted_proxies_strict it takes the
// left-most address there, which is whatever the client wrote before its
// request reached a proxy that appends: a bot names a new address on every
// send and no per-IP limit ever holds. With trusted_proxies_strict Caddy
// reads from the right and takes the first address it does not trust, the
// one the nearest proxy saw. The handler can't tell which kind of proxy is
// in front, so it says so at start, once per server and config load.

// ipSourceWarned holds, by the Done channel of each loading or loaded
// config, the servers already warned about, until the config unloads.
var ipSourceWarned = struct {
	sync.Mutex
	m map[<-chan struct{}]map[*caddyhttp.Server]bool
}{m: map[<-chan struct{}]map[*caddyhttp.Server]bool{}}

// warnClientIPSource warns when the handler's server takes the client IP
// from the left of a header any client can write to.
func (h *Handler) warnClientIPSource(ctx caddy.Context) {
	srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv.TrustedProxiesStrict > 0 || !(trustsProxies(srv) || srv.TrustedProxiesUnix) {
		return
	}
	if !firstIPSourceWarning(ctx, srv) {
		return
	}
	headers := srv.ClientIPHeaders
	if len(headers) == 0 {
		headers = []string{"X-Forwarded-For"}
	}
	h.logger.Warn("this server trusts proxies (trusted_proxies) without trusted_proxies_strict, so Caddy's client IP is the left-most address of "+strings.Join(headers, ", ")+
		", which a client writes itself when the proxy in front appends to the header: a bot then names a new address on every send, and the per-IP send limit (limits { ip }) never holds. "+
		"If the proxy appends (nginx's $proxy_add_x_forwarded_for, most load balancers and CDNs), add trusted_proxies_strict to this server's options (the servers global option); "+
		"if it replaces the header with the address it saw, this is safe as it is",
		zap.Strings("listen", srv.Listen), zap.Strings("client_ip_headers", headers))
}

// trustsProxies says whether srv has trusted_proxies. Caddy drops the
// option's JSON once it has loaded the module (before the routes, so
// before this handler), and keeps the module unexported: its presence is
// read by reflection. Should Caddy rename the field, this says false and
// TestPerIPLimitBehindAnAppendingProxy fails, rather than a warning going
// to every server.
func trustsProxies(srv *caddyhttp.Server) bool {
	if srv.TrustedProxiesRaw != nil {
		return true // not provisioned yet (a test, or a future Caddy)
	}
	f := reflect.ValueOf(srv).Elem().FieldByName("trustedProxies")
	return f.IsValid() && f.Kind() == reflect.Interface && !f.IsNil()
}

// firstIPSourceWarning says whether srv is not yet warned about in the
// config of ctx, and notes that it now is.
func firstIPSourceWarning(ctx caddy.Context, srv *caddyhttp.Server) bool {
	done := ctx.Done()
	if done == nil {
		return true // not a config's context: nothing to remember it by
	}
	ipSourceWarned.Lock()
	defer ipSourceWarned.Unlock()
	warned, known := ipSourceWarned.m[done]
	if warned[srv] {
		return false
	}
	if !known {
		warned = map[*caddyhttp.Server]bool{}
		ipSourceWarned.m[done] = warned
		context.AfterFunc(ctx, func() {
			ipSourceWarned.Lock()
			defer ipSourceWarned.Unlock()
			delete(ipSourceWarned.m, done)
		})
	}
	warned[srv] = true
	return true
}

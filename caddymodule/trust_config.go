package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/textproto"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// With headers_set_by forward_auth, the handler checks each request header
// identity and phone read against the header of the same name in the
// answer of the reverse_proxy (forward_auth) whose handle_response it runs
// in (trust.go). Two shapes of config can never pass that check, and
// would refuse every request at run time; where the handler can see them
// at load, in the routes that run before it in its own route list, it
// refuses the config instead, saying what to change:
//
//   - copy_headers From>To, a rename: the request's To is checked against
//     the answer's To, which the answer lacks.
//   - a second reverse_proxy with handle_response between forward_auth and
//     sms_stepup: sms_stepup sees that proxy's answer, not forward_auth's.
//
// A config the handler can't see this way (its routes in a server's route
// list, a forward_auth in another subroute) is checked only at run time,
// which refuses rather than trusts.

// answerCopy is a request header that a handle_response route sets from
// the answer's header from.
type answerCopy struct{ to, from string }

// answeringProxy is a reverse_proxy with handle_response routes: what they
// copy from its answer onto the request.
type answeringProxy struct{ copies []answerCopy }

// checkForwardAuthRoute refuses the configs above.
func (h *Handler) checkForwardAuthRoute(p *provisioning) error {
	if h.trust.by != setByForwardAuth || len(h.trust.headers) == 0 {
		return nil
	}
	proxies := proxiesBefore(p.ctx)
	for _, px := range proxies {
		for _, c := range px.copies {
			if slices.Contains(h.trust.headers, c.to) && c.from != c.to {
				return fmt.Errorf("identity or phone reads the request header %s, which forward_auth copies from its answer's %s (copy_headers %s>%s): sms_stepup checks %s against the answer's header of the same name, which the answer lacks, so every request would be refused; copy %s without renaming it (copy_headers %s) and read {http.request.header.%s}",
					c.to, c.from, c.from, c.to, c.to, c.from, c.from, c.from)
			}
		}
	}
	copying := slices.IndexFunc(proxies, func(px answeringProxy) bool { return px.copiesAny(h.trust.headers) })
	if copying >= 0 && copying < len(proxies)-1 && !proxies[len(proxies)-1].copiesAny(h.trust.headers) {
		return fmt.Errorf("a reverse_proxy with handle_response runs between the forward_auth that copies %s and sms_stepup: sms_stepup would check that proxy's answer instead of forward_auth's and refuse every request; put sms_stepup right after forward_auth",
			h.trust.names)
	}
	return nil
}

func (px answeringProxy) copiesAny(names []string) bool {
	return slices.ContainsFunc(px.copies, func(c answerCopy) bool { return slices.Contains(names, c.to) })
}

// proxiesBefore lists the reverse_proxy handlers with handle_response that
// run before the handler being provisioned in its route list, in order;
// inside a handle_response route, the proxy that runs it, with what the
// routes before the handler copy.
func proxiesBefore(ctx caddy.Context) []answeringProxy {
	mods := ctx.Modules()
	if len(mods) < 2 {
		return nil
	}
	switch parent := mods[len(mods)-2].(type) {
	case *caddyhttp.Subroute:
		return walkRoutes(parent.Routes).proxies
	case *reverseproxy.Handler:
		for _, rh := range parent.HandleResponse {
			if w := walkRoutes(rh.Routes); w.current {
				return append(w.proxies, answeringProxy{copies: w.copies})
			}
		}
	}
	return nil
}

// routeWalk is what walkRoutes found before the handler being provisioned.
type routeWalk struct {
	proxies []answeringProxy
	copies  []answerCopy // headers handlers' copies outside any proxy
	current bool         // whether the handler is in these routes
}

// walkRoutes reads routes up to the handler being provisioned: Caddy
// provisions a route list in order, so the routes before it have their
// handlers and have dropped their JSON, and its own route still has its
// JSON, of which the handlers before the first sms_stepup come first.
func walkRoutes(routes caddyhttp.RouteList) routeWalk {
	var w routeWalk
	for _, r := range routes {
		if r.HandlersRaw == nil {
			for _, hd := range r.Handlers {
				w.add(handlerCopies(hd))
			}
			continue
		}
		w.current = true
		for _, raw := range r.HandlersRaw {
			if rawHandlerName(raw) == "sms_stepup" {
				break
			}
			w.add(rawHandlerCopies(raw))
		}
		break
	}
	return w
}

// add notes a handler: a proxy (non-nil px) or a headers handler's copies.
func (w *routeWalk) add(px *answeringProxy, copies []answerCopy) {
	if px != nil {
		w.proxies = append(w.proxies, *px)
	}
	w.copies = append(w.copies, copies...)
}

// handlerCopies reads a provisioned handler.
func handlerCopies(hd caddyhttp.MiddlewareHandler) (*answeringProxy, []answerCopy) {
	switch hd := hd.(type) {
	case *reverseproxy.Handler:
		if len(hd.HandleResponse) == 0 {
			return nil, nil
		}
		px := &answeringProxy{}
		for _, rh := range hd.HandleResponse {
			px.copies = append(px.copies, walkRoutes(rh.Routes).copies...)
		}
		return px, nil
	case *headers.Handler:
		return nil, setCopies(hd.Request)
	}
	return nil, nil
}

// rawProxy and rawHeaders are what rawHandlerCopies reads of a handler's
// JSON.
type rawProxy struct {
	HandleResponse []struct {
		Routes []struct {
			Handle []json.RawMessage `json:"handle"`
		} `json:"routes"`
	} `json:"handle_response"`
}

type rawHeaders struct {
	Request *headers.HeaderOps `json:"request"`
}

func rawHandlerName(raw json.RawMessage) string {
	var v struct {
		Handler string `json:"handler"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.Handler
}

// rawHandlerCopies reads a handler's JSON as handlerCopies reads it
// provisioned.
func rawHandlerCopies(raw json.RawMessage) (*answeringProxy, []answerCopy) {
	switch rawHandlerName(raw) {
	case "reverse_proxy":
		var rp rawProxy
		if json.Unmarshal(raw, &rp) != nil || len(rp.HandleResponse) == 0 {
			return nil, nil
		}
		px := &answeringProxy{}
		for _, rh := range rp.HandleResponse {
			for _, route := range rh.Routes {
				for _, hd := range route.Handle {
					_, copies := rawHandlerCopies(hd)
					px.copies = append(px.copies, copies...)
				}
			}
		}
		return px, nil
	case "headers":
		var hd rawHeaders
		if json.Unmarshal(raw, &hd) != nil {
			return nil, nil
		}
		return nil, setCopies(hd.Request)
	}
	return nil, nil
}

// answerPlaceholder begins the placeholder of a header of the answer.
const answerPlaceholder = "{http.reverse_proxy.header."

// setCopies lists the request headers ops sets to one header of the
// answer, each by itself.
func setCopies(ops *headers.HeaderOps) []answerCopy {
	if ops == nil {
		return nil
	}
	var out []answerCopy
	for to, values := range ops.Set {
		if len(values) != 1 {
			continue
		}
		name, isAnswer := strings.CutPrefix(values[0], answerPlaceholder)
		from, closed := strings.CutSuffix(name, "}")
		if isAnswer && closed && from != "" && !strings.ContainsAny(from, "{}") {
			out = append(out, answerCopy{to: textproto.CanonicalMIMEHeaderKey(to), from: textproto.CanonicalMIMEHeaderKey(from)})
		}
	}
	return out
}

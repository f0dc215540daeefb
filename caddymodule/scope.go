package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// A step-up proves only what its own handler checked (SECURITY.md rule
// 26): whose phone it asked, under which rules. So each handler has a
// scope, which it writes into the aud of every token it issues and into
// every CSRF token of its pages, and it takes only tokens of its own
// scope, whatever key signs them. The scope is the handler's sites and
// path_prefix; the listen addresses of its server and path_prefix when it
// knows no site (a JSON config may leave sites out); or, when handlers
// are meant to share step-ups, the realm they name. Two handlers of one
// config that would share a scope without a realm are refused, so no
// config form lets them take each other's tokens by default; only copies
// of one handler config may (a site block with addresses on two ports
// puts its handler in two servers), since they check the same things.

// scopePrefix begins every scope: a URN, since a JWT aud that holds a
// colon must be a URI (RFC 7519 section 2).
const scopePrefix = "urn:caddy-sms-stepup:"

// neutralServiceName names the service when neither service_name nor a
// site address does: never the request's Host header, which on a
// catch-all or wildcard site the client chooses (SECURITY.md rule 30).
var neutralServiceName = otp.DefaultConfig().ServiceName

// provisionScope works out the handler's scope, how errors name it, and
// the name of its service.
func (h *Handler) provisionScope(ctx caddy.Context) {
	var listen []string
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		listen = srv.Listen
	}
	h.audience = h.scopeOf(listen)
	switch {
	case len(h.Sites) > 0:
		h.scopeLabel = fmt.Sprintf("sms_stepup of %s (path_prefix %s)", strings.Join(h.Sites, ", "), h.PathPrefix)
	case len(listen) > 0:
		h.scopeLabel = fmt.Sprintf("sms_stepup of the server on %s (path_prefix %s, no sites)", strings.Join(listen, ", "), h.PathPrefix)
	default:
		h.scopeLabel = fmt.Sprintf("sms_stepup (path_prefix %s, no sites)", h.PathPrefix)
	}
	h.serviceLabel = cmp.Or(h.ServiceName, siteName(h.Sites), neutralServiceName)
}

// scopeOf is the handler's scope; listen is its server's addresses.
func (h *Handler) scopeOf(listen []string) string {
	prefix := url.QueryEscape(h.PathPrefix)
	switch {
	case h.Realm != "":
		return scopePrefix + "realm:" + h.Realm
	case len(h.Sites) > 0:
		return scopePrefix + "site:" + scopeList(h.Sites) + ":" + prefix
	}
	return scopePrefix + "listen:" + scopeList(listen) + ":" + prefix
}

// scopeList writes a set of addresses one way whatever their order or
// case, each escaped so that no address can pass for two.
func scopeList(items []string) string {
	out := make([]string, 0, len(items))
	for _, s := range items {
		out = append(out, url.QueryEscape(strings.ToLower(s)))
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ",")
}

// siteName is the host of the first site address that names one, a
// wildcard's domain for *.example.com; "" for catch-alls such as :443.
func siteName(sites []string) string {
	for _, s := range sites {
		addr, err := httpcaddyfile.ParseAddress(s)
		host := strings.TrimPrefix(addr.Host, "*.")
		if err == nil && host != "" && !strings.ContainsAny(host, "*{}") {
			return host
		}
	}
	return ""
}

// fitServiceName checks that the SMS fits max_segments with the service
// name, and returns the name to use. A name taken from the site's address
// that makes it too long gives way to the neutral name, with a warning,
// so that a long host name fails no config; a service_name that does is
// the operator's to shorten.
func (h *Handler) fitServiceName(msgs *otp.Messages, cfg otp.Config, maxSegments int) (string, error) {
	err := msgs.CheckSegments(cfg.ServiceName, cfg.CodeLength, cfg.CodeTTL, maxSegments, h.actions()...)
	if err == nil || h.ServiceName != "" || cfg.ServiceName == neutralServiceName {
		return cfg.ServiceName, err
	}
	h.logger.Warn("service_name unset and the site's address makes the SMS longer than max_segments: pages and SMS name the service "+strconv.Quote(neutralServiceName)+"; set service_name",
		zap.String("site", cfg.ServiceName), zap.Error(err))
	h.serviceLabel = neutralServiceName
	return neutralServiceName, msgs.CheckSegments(neutralServiceName, cfg.CodeLength, cfg.CodeTTL, maxSegments, h.actions()...)
}

// validateScope checks realm and sites.
func (h *Handler) validateScope() error {
	if h.Realm != "" && !validRealm(h.Realm) {
		return optionErrorf("realm", "realm %q: expected a name of up to 64 letters, digits, '.', '_' and '-', such as corp", h.Realm)
	}
	for _, s := range h.Sites {
		if s == "" || strings.ContainsAny(s, ", \t\r\n") {
			return optionErrorf("sites", "sites %q: expected site addresses such as app.example.com, without spaces or commas", s)
		}
	}
	return nil
}

func validRealm(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// csrfBinding is what the CSRF tokens of v's pages are bound to.
func (h *Handler) csrfBinding(v *visit, nonce string) otp.CSRFBinding {
	return otp.CSRFBinding{Nonce: nonce, Identity: v.identity, SessionHash: v.sessionHash, Scope: h.audience}
}

// loads holds the scopes of the handlers of each config that is loading
// or loaded, by the Done channel of the config's context, until the
// config is unloaded. A handler is compared only with the handlers of its
// own config: on a reload the old and the new config are provisioned side
// by side for a moment.
var loads = struct {
	sync.Mutex
	m map[<-chan struct{}][]loadedScope
}{m: map[<-chan struct{}][]loadedScope{}}

// loadedScope is what joinLoad compares of a handler.
type loadedScope struct {
	audience, realm, label string
	// config is the fingerprint of the handler's config as given.
	config string
	// shared holds the values of realmShared, in order.
	shared []string
}

// realmShared are what the handlers of one realm must share: a step-up
// made on one passes the others, so it must have asked the same phone
// about the same identity, and every one must see the revocations of the
// others (they live in the store) and verify their tokens. They must also
// ask as hard a question: a code issued by one handler of the realm (its
// code_length, its max_attempts written into the challenge) is checked by
// whichever handler the code is typed into, whose failure_budget counts
// the wrong ones on the identity's one counter, and the step-up it earns
// passes them all, so a realm is only as strong as its weakest code. Secret
// ones are never shown in an error.
var realmShared = [...]struct {
	option string
	secret bool
	value  func(*Handler) string
}{
	{"identity", false, func(h *Handler) string { return h.Identity }},
	{"session", false, func(h *Handler) string { return h.Session }},
	{"phone", false, func(h *Handler) string { return h.Phone }},
	{"phone_file", false, func(h *Handler) string { return h.PhoneFile }},
	{"enroll", false, func(h *Handler) string { return strconv.FormatBool(h.Enroll) }},
	{"phone_source", true, func(h *Handler) string { return phoneSourcesShared(h) }},
	{"code_length", false, func(h *Handler) string { return strconv.Itoa(cmp.Or(h.CodeLength, otp.DefaultConfig().CodeLength)) }},
	{"max_attempts", false, func(h *Handler) string { return strconv.Itoa(cmp.Or(h.MaxAttempts, otp.DefaultConfig().MaxAttempts)) }},
	{"failure_budget", false, func(h *Handler) string {
		return strconv.Itoa(cmp.Or(h.FailureBudget, otp.DefaultConfig().Failures.Budget))
	}},
	{"max_identities_per_number", false, func(h *Handler) string { return strconv.Itoa(max(h.MaxIdentitiesPerNumber, 1)) }},
	{"the phone policy", false, phonePolicyShared},
	{"lookup", true, func(h *Handler) string { return jsonOf(h.Lookup) }},
	{"signing key", true, func(h *Handler) string { return h.keys.ID + " " + h.SigningKeyFile }},
	{"store", true, func(h *Handler) string { return canonicalJSON(h.StoreRaw) }},
}

// joinLoad adds the handler to the handlers of its config, refusing it
// when it would share its scope with one of them by default, or when it
// differs from another handler of its realm in what they must share. It
// runs once the keys are derived and before the store is loaded (which
// drops its JSON). config is the fingerprint of its config as given.
func (h *Handler) joinLoad(ctx caddy.Context, config string) error {
	done := ctx.Done()
	if done == nil {
		return nil // not a config's context: there is nothing to compare with
	}
	me := loadedScope{audience: h.audience, realm: h.Realm, label: h.scopeLabel, config: config}
	for _, s := range realmShared {
		me.shared = append(me.shared, s.value(h))
	}
	loads.Lock()
	defer loads.Unlock()
	others, known := loads.m[done]
	for _, o := range others {
		if err := me.conflict(o); err != nil {
			return err
		}
	}
	if !known {
		context.AfterFunc(ctx, func() {
			loads.Lock()
			defer loads.Unlock()
			delete(loads.m, done)
		})
	}
	loads.m[done] = append(others, me)
	return nil
}

// conflict is why s and o may not be in one config, or nil.
func (s loadedScope) conflict(o loadedScope) error {
	if s.audience != o.audience || s.config == o.config {
		return nil
	}
	if s.realm == "" {
		return fmt.Errorf("%s and %s would accept each other's step-ups: give them different path_prefix values or sites, or, to share step-ups on purpose, one realm",
			o.label, s.label)
	}
	var diffs []string
	for i, f := range realmShared {
		switch {
		case s.shared[i] == o.shared[i]:
		case f.secret:
			diffs = append(diffs, f.option)
		default:
			diffs = append(diffs, fmt.Sprintf("%s (%s, and %s)", f.option, shown(o.shared[i]), shown(s.shared[i])))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("realm %q: %s and %s differ in %s: the handlers of a realm accept each other's step-ups, so they must share identity, session, phone, phone_file, phone_source, enroll, code_length, max_attempts, failure_budget, max_identities_per_number, the phone policy (default_region, allow_countries, allow_types, mobile_prefixes, deny_numbers, allow_numbers), lookup, the signing key and the store",
		s.realm, o.label, s.label, strings.Join(diffs, ", "))
}

// phonePolicyShared is the phone policy as the handlers of a realm must
// share it: a number one of them would refuse, or would send to only
// after a carrier lookup, must not be enrolled through another whose
// step-ups it accepts.
func phonePolicyShared(h *Handler) string {
	return jsonOf(struct {
		Region, Deny, Allow string
		Countries, Types    []string
		Mobile              []string
	}{h.DefaultRegion, h.DenyNumbers, h.AllowNumbers, h.AllowCountries, h.AllowTypes, h.MobilePrefixes})
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func shown(v string) string {
	if v == "" {
		return "none"
	}
	return strconv.Quote(v)
}

// canonicalJSON writes raw with its object keys sorted, so that the same
// module config compares equal however it was spaced or ordered; none is
// the default store.
func canonicalJSON(raw json.RawMessage) string {
	if raw == nil {
		raw = json.RawMessage(`{"type":"memory"}`)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestPlaceholderKeys(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		"{http.auth.user.id}":                             {"http.auth.user.id"},
		"{http.request.header.A}@{http.request.header.B}": {"http.request.header.A", "http.request.header.B"},
		`\{http.request.header.A}`:                        nil,
		"plain":                                           nil,
		"{unclosed":                                       nil,
	} {
		if got := placeholderKeys(expr); !reflect.DeepEqual(got, want) {
			t.Errorf("placeholderKeys(%q) = %q, want %q", expr, got, want)
		}
	}
}

// TestUntrustedHeaders checks, without a Caddy, what each headers_set_by
// believes: the signals are the ones real Caddy gives (rule 29's test
// drives it).
func TestUntrustedHeaders(t *testing.T) {
	t.Parallel()
	newHandler := func(t *testing.T, identity, by string) *Handler {
		h := &Handler{IdentityOptions: IdentityOptions{Identity: identity, HeadersSetBy: by}, logger: zap.NewNop()}
		if err := h.provisionTrust(); err != nil {
			t.Fatal(err)
		}
		return h
	}
	// request is a request with the header X-Auth-Request-User: alice (none
	// with noHeader, an empty one with emptyHeader), after forward_auth
	// answered status (0: it did not run) with answerUser, from a peer
	// trusted or not.
	const noHeader, emptyHeader = "-", "(empty)"
	request := func(status int, answerUser, sent string, trusted bool) (*http.Request, *caddy.Replacer) {
		r := httptest.NewRequest(http.MethodGet, "/settings", nil)
		switch sent {
		case "":
			r.Header.Set("X-Auth-Request-User", "alice")
		case emptyHeader:
			r.Header.Set("X-Auth-Request-User", "")
		case noHeader:
		}
		ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: trusted})
		if status != 0 {
			ctx = context.WithValue(ctx, forwardAuthAnswering, struct{}{})
		}
		r = r.WithContext(ctx)
		repl := caddyhttp.NewTestReplacer(r)
		if status != 0 {
			repl.Set("http.reverse_proxy.status_code", status)
		}
		if answerUser != "" {
			repl.Set("http.reverse_proxy.header.X-Auth-Request-User", answerUser)
		}
		return r, repl
	}
	const header = "{http.request.header.x-auth-request-user}"
	for _, tt := range []struct {
		name       string
		identity   string
		by         string
		status     int
		answerUser string
		trusted    bool
		want       string
		sent       string // "": alice; noHeader; emptyHeader
	}{
		{"an identity no header sets needs nothing", "{http.auth.user.id}", "", 0, "", false, "", ""},
		{"a header without forward_auth is refused", header, "", 0, "", true, "forward_auth_not_before", ""},
		{"a header after forward_auth answered 202 with it is believed", header, "", 202, "alice", false, "", ""},
		{"a header after forward_auth answered 202 without it is the client's own and refused", header, "forward_auth", 202, "", false, "header_not_in_forward_auth_answer", ""},
		{"an empty header after forward_auth answered 202 without it is refused too", header, "forward_auth", 202, "", false, "header_not_in_forward_auth_answer", emptyHeader},
		{"no header after forward_auth answered 202 without it is believed (and names no one)", header, "forward_auth", 202, "", false, "", noHeader},
		{"a header forward_auth answered but that is missing from the request is refused", header, "", 202, "alice", false, "header_not_copied_by_forward_auth", noHeader},
		{"a header after forward_auth answered 401 is refused", header, "", 401, "alice", false, "forward_auth_not_before", ""},
		{"a header other than forward_auth's answer is refused", header, "", 200, "bob", false, "header_not_copied_by_forward_auth", ""},
		{"a header from a trusted proxy is believed", header, "trusted_proxy", 0, "", true, "", ""},
		{"a header from another peer is refused", header, "trusted_proxy", 202, "alice", false, "peer_not_in_trusted_proxies", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(t, tt.identity, tt.by)
			r, repl := request(tt.status, tt.answerUser, tt.sent, tt.trusted)
			if got := h.untrustedHeaders(r, repl); got != tt.want {
				t.Errorf("untrustedHeaders = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStartWarnsOfEveryClientSetIdentityOrPhone(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.WarnLevel)
	h := &Handler{IdentityOptions: IdentityOptions{Identity: "{http.request.header.Remote-User}", Phone: "{http.request.cookie.phone}"}, logger: zap.New(core)}
	if err := h.provisionTrust(); err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, e := range logs.All() {
		said = append(said, e.Message)
	}
	all := strings.Join(said, "\n")
	for _, want := range []string{"identity reads the request header Remote-User", "copy_headers Remote-User", "phone reads {http.request.cookie.phone}, which any client can set"} {
		if !strings.Contains(all, want) {
			t.Errorf("the start-up warnings do not say %q:\n%s", want, all)
		}
	}
	if err := (&Handler{IdentityOptions: IdentityOptions{HeadersSetBy: "anyone"}}).provisionTrust(); err == nil {
		t.Error("headers_set_by anyone was accepted")
	}
}

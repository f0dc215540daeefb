package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestUnsetIdentityPlaceholderIsRefused guards the fail-closed rule: when
// nothing set the identity placeholder (basic_auth did not run for this
// request), the request is refused, not stepped up under the placeholder's
// literal text as one shared identity.
func TestUnsetIdentityPlaceholderIsRefused(t *testing.T) {
	cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{
		IdentityOptions: IdentityOptions{Identity: "{http.auth.user.id}", Session: "{http.request.cookie.app_session}", Phone: "{http.request.header.X-Phone}"},
		TokenOptions:    TokenOptions{SigningKey: strings.Repeat("s", 32)},
		GatewayRaw:      []byte(`{"type":"console","outbox":"` + filepath.Join(t.TempDir(), "outbox") + `"}`),
		StoreRaw:        []byte(`{"type":"memory","name":"identity-test"}`),
	}
	if err := h.Provision(cctx); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/settings", "/_stepup/"} {
		t.Run("a request to "+path+" without identity gets 401 and never reaches the upstream", func(t *testing.T) {
			r := httptest.NewRequest("GET", path, nil)
			r.Header.Set("X-Phone", "+819012345678")
			repl := caddy.NewReplacer()
			ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
			ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
			r = r.WithContext(ctx)
			w := httptest.NewRecorder()
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
				t.Fatal("the request reached the upstream")
				return nil
			})
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; Location %q", w.Code, w.Header().Get("Location"))
			}
		})
	}
}

func TestSigningKeyPlaceholderMustResolve(t *testing.T) {
	cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{TokenOptions: TokenOptions{SigningKey: "{env.STEPUP_TEST_UNSET_SIGNING_KEY_VARIABLE_XYZ}"}}
	if _, err := h.signingKey(cctx); err == nil {
		t.Fatal("an unset {env.*} signing key was accepted (as its own readable text)")
	}
}

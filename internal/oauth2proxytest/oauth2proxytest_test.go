package oauth2proxytest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
)

// TestExampleConfigAnswersWithTheSubject pins down what the step-up tests
// and the README rely on, with examples/oauth2-proxy.cfg as written: after
// a sign-in, /oauth2/auth answers 202 with the OIDC `sub` in
// X-Auth-Request-User and the e-mail in X-Auth-Request-Email, and a large
// session is split into _oauth2_proxy_0, _oauth2_proxy_1, ... that together
// still sign the user in.
func TestExampleConfigAnswersWithTheSubject(t *testing.T) {
	t.Parallel()
	idp := StartProvider(t)
	proxy := Start(t, Options{Config: "../../examples/oauth2-proxy.cfg", Provider: idp})

	for _, c := range []struct {
		name  string
		user  *mockoidc.MockUser
		split bool
	}{
		{"a user with a small session gets one cookie", &mockoidc.MockUser{Subject: "sub-small", Email: "small@example.com", EmailVerified: true}, false},
		{"a user with a large session gets it split", &mockoidc.MockUser{Subject: "sub-large", Email: "large@example.com", EmailVerified: true, Address: LargeClaim(t)}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			jar, err := cookiejar.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Jar: jar}
			if resp := get(t, client, proxy.URL+"/oauth2/auth"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("/oauth2/auth before sign-in: %d, want 401", resp.StatusCode)
			}
			idp.QueueUser(c.user)
			if resp := get(t, client, proxy.URL+"/oauth2/sign_in?rd=/back"); resp.Request.URL.Path != "/back" {
				t.Fatalf("sign-in ended at %s, want /back\n%s", resp.Request.URL, proxy.Output())
			}
			resp := get(t, client, proxy.URL+"/oauth2/auth")
			if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Auth-Request-User") != c.user.Subject || resp.Header.Get("X-Auth-Request-Email") != c.user.Email {
				t.Fatalf("/oauth2/auth after sign-in: %d, X-Auth-Request-User %q, X-Auth-Request-Email %q; want 202, %q, %q",
					resp.StatusCode, resp.Header.Get("X-Auth-Request-User"), resp.Header.Get("X-Auth-Request-Email"), c.user.Subject, c.user.Email)
			}
			names := cookieNames(jar, proxy.URL)
			split := names["_oauth2_proxy_0"] && names["_oauth2_proxy_1"] && !names["_oauth2_proxy"]
			whole := names["_oauth2_proxy"] && !names["_oauth2_proxy_0"]
			if c.split && !split || !c.split && !whole {
				t.Fatalf("cookies %v: want the session split = %v", names, c.split)
			}
		})
	}
}

func get(t *testing.T, client *http.Client, target string) *http.Response {
	t.Helper()
	resp, err := client.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func cookieNames(jar http.CookieJar, base string) map[string]bool {
	u, _ := url.Parse(base)
	names := map[string]bool{}
	for _, c := range jar.Cookies(u) {
		names[c.Name] = true
	}
	return names
}

package tomcattest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestTomcatReadsPathsItsOwnWay pins down what the step-up tests rely on:
// asked directly, Tomcat serves odd spellings of /admin with the admin
// servlet. If a Tomcat upgrade stopped doing so, those tests would prove
// less than they say.
func TestTomcatReadsPathsItsOwnWay(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		allowBackslash bool
		paths          map[string]string // path -> servlet that answers it
	}{
		{"on its defaults", false, map[string]string{
			"/admin":          "servlet=admin path=/admin",
			"/x/..;/admin":    "servlet=admin path=/admin",
			"/;x/admin":       "servlet=admin path=/admin",
			"/.;/admin":       "servlet=admin path=/admin",
			"/x/..;/settings": "servlet=settings path=/settings",
			"/x/%2e%2e/admin": "servlet=admin path=/admin",
			"/ADMIN":          "servlet=default path=/ADMIN",
			"/a;b":            "servlet=default path=/a",
		}},
		{"with allowBackslash", true, map[string]string{
			"/x/..%5Cadmin":    "servlet=admin path=/admin",
			"/x/..%5csettings": "servlet=settings path=/settings",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tc := Start(t, Options{AllowBackslash: c.allowBackslash})
			for path, want := range c.paths {
				resp, err := http.Get(tc.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), want+" ") {
					t.Errorf("GET %s: %d %q, want 200 %q", path, resp.StatusCode, body, want)
				}
			}
		})
	}
}

package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWarnsOfASmsStepupWrappedInAMatcher: a handler inside handle
// /settings* { } never sees the other spellings of the path an upstream
// serves as /settings, so the load warns, naming the handler; at site
// level, in a handle without a matcher and in route { }, it does not.
func TestWarnsOfASmsStepupWrappedInAMatcher(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	phones, logFile := filepath.Join(dir, "phones.csv"), filepath.Join(dir, "caddy.log")
	if err := os.WriteFile(phones, []byte("alice,+819012345678\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stepup := func() string {
		return fmt.Sprintf("sms_stepup /settings* {\nidentity {http.auth.user.id}\nphone_file %s\nsigning_key %s\n%s\n}", phones, htKey, scStore())
	}
	config := fmt.Sprintf("{\nstorage file_system %s\nauto_https off\nlog {\noutput file %s\nformat json\n}\n}\n", filepath.Join(dir, "storage"), logFile) +
		"http://wrapped.example.com {\nhandle /settings* {\n" + stepup() + "\nreverse_proxy 127.0.0.1:8080\n}\nhandle {\nreverse_proxy 127.0.0.1:8080\n}\n}\n" +
		"http://method.example.com {\n@post method POST\nroute @post {\n" + stepup() + "\n}\nreverse_proxy 127.0.0.1:8080\n}\n" +
		"http://site.example.com {\n" + stepup() + "\nreverse_proxy 127.0.0.1:8080\n}\n" +
		"http://handle.example.com {\nhandle /oauth2/* {\nreverse_proxy 127.0.0.1:4180\n}\nhandle {\n" + stepup() + "\nreverse_proxy 127.0.0.1:8080\n}\n}\n" +
		"http://route.example.com {\nroute {\n" + stepup() + "\nreverse_proxy 127.0.0.1:8080\n}\n}\n"
	if err := scValidate(t, tcIndent(config)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, "inside a block with a matcher") {
			for _, site := range []string{"wrapped", "method", "site", "handle", "route"} {
				if strings.Contains(line, "http://"+site+".example.com") {
					warned = append(warned, site)
				}
			}
		}
	}
	if fmt.Sprint(warned) != "[wrapped method]" {
		t.Errorf("warned of the handlers of %v, want [wrapped method]:\n%s", warned, raw)
	}
}

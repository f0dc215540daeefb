package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForwardAuthShapesThatCanNeverPassAreRefusedAtLoad: with identity
// from a header forward_auth copies, a copy_headers rename, or another
// reverse_proxy with handle_response between forward_auth and sms_stepup,
// would refuse every request at run time (rule 29's check compares the
// header with forward_auth's answer under the same name); the load says
// so instead. The shapes that work still load.
func TestForwardAuthShapesThatCanNeverPassAreRefusedAtLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	phones := filepath.Join(dir, "phones.csv")
	if err := os.WriteFile(phones, []byte("alice,+819012345678\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stepup := func(header string) string {
		return fmt.Sprintf("sms_stepup /settings* {\n\tidentity {http.request.header.%s}\n\tphone_file %s\n\tsigning_key %s\n\t%s\n}", header, phones, htKey, scStore())
	}
	forwardAuth := func(matcher, copied string) string {
		return fmt.Sprintf("forward_auth %s127.0.0.1:4180 {\n\turi /oauth2/auth\n\tcopy_headers %s\n}", matcher, copied)
	}
	// A second proxy asked about each request, whose answer's handle_response
	// sets a header of its own.
	const geo = "reverse_proxy 127.0.0.1:4181 {\n\tmethod GET\n\trewrite /country\n\t@ok status 2xx\n\thandle_response @ok {\n\t\trequest_header X-Country {rp.header.X-Country}\n\t}\n}"
	site := func(body string) string {
		return scGlobal(dir) + tcIndent("http://a.example.com {\n"+body+"\nreverse_proxy 127.0.0.1:8080\n}") + "\n"
	}
	for _, tc := range []struct {
		name, config string
		want         []string // in the error; none: the config loads
	}{
		{"a copy_headers rename of the header identity reads", site(forwardAuth("", "X-Auth-Request-User>X-User") + "\n" + stepup("X-User")),
			[]string{"copy_headers X-Auth-Request-User>X-User", "read {http.request.header.X-Auth-Request-User}"}},
		{"a rename in forward_auth's route of its own (a matcher sets it apart)", site(forwardAuth("/settings* ", "X-Auth-Request-User>X-User") + "\n" + stepup("X-User")),
			[]string{"copy_headers X-Auth-Request-User>X-User"}},
		{"a rename inside handle", site("handle {\n" + forwardAuth("", "X-Auth-Request-Email X-Auth-Request-User>X-User") + "\n" + stepup("X-User") + "\n}"),
			[]string{"copy_headers X-Auth-Request-User>X-User"}},
		{"a rename written by hand in handle_response",
			site("route {\nreverse_proxy 127.0.0.1:4180 {\n\tmethod GET\n\trewrite /oauth2/auth\n\t@good status 2xx\n\thandle_response @good {\n\t\trequest_header X-User {rp.header.X-Auth-Request-User}\n\t}\n}\n" + stepup("X-User") + "\n}"),
			[]string{"copy_headers X-Auth-Request-User>X-User"}},
		{"another proxy's handle_response between forward_auth and sms_stepup",
			site("route {\n" + forwardAuth("", "X-Auth-Request-User") + "\n" + geo + "\n" + stepup("X-Auth-Request-User") + "\n}"),
			[]string{"runs between the forward_auth that copies X-Auth-Request-User and sms_stepup", "right after forward_auth"}},

		{"control: forward_auth then sms_stepup, copied under its own name", site(forwardAuth("", "X-Auth-Request-User X-Auth-Request-Email") + "\n" + stepup("X-Auth-Request-User")), nil},
		{"control: a rename of a header identity does not read", site(forwardAuth("", "X-Auth-Request-User X-Auth-Request-Email>X-Mail") + "\n" + stepup("X-Auth-Request-User")), nil},
		{"control: the other proxy before forward_auth", site("route {\n" + geo + "\n" + forwardAuth("", "X-Auth-Request-User") + "\n" + stepup("X-Auth-Request-User") + "\n}"), nil},
		{"control: the other proxy after sms_stepup", site("route {\n" + forwardAuth("", "X-Auth-Request-User") + "\n" + stepup("X-Auth-Request-User") + "\n" + geo + "\n}"), nil},
	} {
		err := scValidate(t, tc.config)
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != nil && err == nil:
			t.Errorf("%s: loaded", tc.name)
		case err != nil:
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: the error does not say %q:\n%v", tc.name, w, err)
				}
			}
		}
	}
}

// tcIndent indents a Caddyfile by its braces, as caddy fmt would.
func tcIndent(caddyfile string) string {
	var out []string
	depth := 0
	for _, line := range strings.Split(caddyfile, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "}") {
			depth--
		}
		out = append(out, strings.Repeat("\t", depth)+line)
		if strings.HasSuffix(line, "{") {
			depth++
		}
	}
	return strings.Join(out, "\n")
}

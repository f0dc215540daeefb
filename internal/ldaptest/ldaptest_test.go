package ldaptest_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/ldaptest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
)

// TestStartServesOverLDAPAndLDAPS asks the directory with ldapsearch over
// ldap://, StartTLS and ldaps:// (trusting only the test's CA), finds a
// person by uid and by sAMAccountName, and checks that an anonymous search
// sees nothing.
func TestStartServesOverLDAPAndLDAPS(t *testing.T) {
	redistest.Require(t, "ldapsearch")
	srv := ldaptest.Start(t, ldaptest.Person{UID: `o'brien,*(x)\y`, Attrs: map[string][]string{
		"mobile": {"+81 90-1234-5678"}, "sAMAccountName": {"OBRIEN"},
	}})
	run := func(url, filter string, extra ...string) (string, error) {
		args := append([]string{"-LLL", "-H", url, "-b", ldaptest.PeopleDN}, extra...)
		args = append(args, filter, "mobile")
		cmd := exec.Command("ldapsearch", args...)
		cmd.Env = append(cmd.Environ(), "LDAPTLS_CACERT="+srv.CAFile, "LDAPTLS_REQCERT=demand")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	search := func(url, filter string, extra ...string) string {
		t.Helper()
		out, err := run(url, filter, extra...)
		if err != nil {
			t.Fatalf("ldapsearch %s %s: %v\n%s", url, filter, err, out)
		}
		return out
	}
	bind := []string{"-x", "-D", ldaptest.BindDN, "-w", ldaptest.BindPassword}
	for name, out := range map[string]string{
		"ldap:// by uid":                  search(srv.URL, `(uid=o'brien,\2a\28x\29\5cy)`, bind...),
		"ldap:// and StartTLS by sAMName": search(srv.URL, "(sAMAccountName=obrien)", append(bind, "-ZZ")...),
		"ldaps://":                        search(srv.LDAPSURL, "(uid=*)", bind...),
	} {
		if !strings.Contains(out, "mobile: +81 90-1234-5678") {
			t.Errorf("%s: no mobile in\n%s", name, out)
		}
	}
	// slapd hides the whole tree from an anonymous client: "No such
	// object".
	if out, _ := run(srv.URL, "(uid=*)", "-x"); strings.Contains(out, "mobile") {
		t.Errorf("an anonymous search read the directory:\n%s", out)
	}
}

package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/kanneltest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

const knFlowCaddyfile = `{
	admin localhost:{{admin}}
	persist_config off
	http_port {{http}}
	https_port {{https}}
	skip_install_trust
	default_bind 127.0.0.1
	# The test client stands for a proxy in front of Caddy that sets X-User
	# (headers_set_by trusted_proxy).
	servers {
		trusted_proxies static 127.0.0.1/32
	}
	storage file_system {{dir}}/storage
}

http://localhost:{{http}} {
	sms_stepup /private* {
		identity {http.request.header.X-User}
		headers_set_by trusted_proxy
		phone_file {{dir}}/phones.csv
		signing_key "kannel-flow-signing-key-0123456789abcdef"
		service_name "Example"
		receipts_url http://localhost:{{http}}
		gateway kannel {
			url {{sendsms}}
			username {{user}}
			password {{pass}}
			from SMSAUTH
			dlr
			timeout 5s
		}
	}
	respond "upstream saw {http.sms_stepup.identity}" 200
}
`

// TestKannelThroughThePlugin walks the step-up with real SMS: Caddy sends
// through a real Kannel, the code is read where the fake SMSC received it,
// the user verifies with it, and Kannel's delivery report reaches the
// plugin, whose code page then says the SMS was delivered. In Japanese too.
func TestKannelThroughThePlugin(t *testing.T) {
	redistest.Require(t, "go")
	kannel := kanneltest.Start(t)
	bin := miBuildCaddy(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "phones.csv"), []byte("kate,+819012345678\nken,+818098765432\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpPort := redistest.FreePort(t)
	cf := strings.NewReplacer("{{admin}}", fmt.Sprint(redistest.FreePort(t)), "{{http}}", fmt.Sprint(httpPort),
		"{{https}}", fmt.Sprint(redistest.FreePort(t)), "{{dir}}", dir, "{{sendsms}}", kannel.SendSMSURL,
		"{{user}}", kannel.Username, "{{pass}}", kannel.Password).Replace(knFlowCaddyfile)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", filepath.Join(dir, "Caddyfile"))
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	proc, err := testproc.Start(cmd, "serving initial configuration", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Stop()
		if t.Failed() {
			t.Logf("caddy output:\n%s\nkannel output:\n%s", proc.Output(), kannel.Output())
		}
	})
	inst := &miInstance{name: "caddy", base: fmt.Sprintf("http://localhost:%d", httpPort)}

	for _, tc := range []struct {
		name, user, to, lang, want, delivered string
	}{
		{"in English", "kate", "+819012345678", "en", "Example code: ", "delivered to your phone"},
		{"in Japanese, sent as UCS-2", "ken", "+818098765432", "ja", "Example 確認コード: ", "お使いの電話に届きました"},
	} {
		t.Run("a code sent through Kannel "+tc.name+" verifies and its delivery report shows", func(t *testing.T) {
			br := miNewBrowser(t, tc.user)
			br.lang = tc.lang
			csrf := br.csrf(inst)
			if status := br.send(inst, csrf); status != http.StatusSeeOther {
				t.Fatalf("send: %d", status)
			}
			sms := kannel.WaitMessage(t, 10*time.Second, func(m kanneltest.SMS) bool { return strings.HasSuffix(m.To, tc.to[1:]) })
			if !strings.HasPrefix(sms.Text, tc.want) {
				t.Fatalf("the SMS at the fake SMSC reads %q, want it to start %q", sms.Text, tc.want)
			}
			code := regexp.MustCompile(`\d{6}`).FindString(sms.Text)
			// Kannel reports delivery on its own schedule: wait for the
			// plugin to log the report (type 1, delivered), then look.
			for from := 0; ; {
				n, err := proc.WaitFor(`"status":"delivered"`, from, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				from = n
				if _, page, _ := br.do("GET", inst.base+"/_stepup/?r=%2Fprivate", nil); strings.Contains(page, tc.delivered) {
					break
				}
			}
			if status, _, hdr := br.verify(inst, csrf, code); status != http.StatusSeeOther || hdr.Get("Location") != "/private" {
				t.Fatalf("verify with the code from the SMSC: %d %q", status, hdr.Get("Location"))
			}
			if status, body, _ := br.do("GET", inst.base+"/private", nil); status != http.StatusOK || !strings.Contains(body, "upstream saw "+tc.user) {
				t.Fatalf("after the step-up: %d %q", status, body)
			}
		})
	}
}
